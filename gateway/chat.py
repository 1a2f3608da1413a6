"""`POST /v1/chat/completions`: one chat job per request; streamed as OpenAI's chunks over SSE.

A chunk carries one kind of delta: the role (first, per choice), a reasoning model's thoughts
(`reasoning_content`), the answer's text (with its tokens' logprobs when asked), or tool-call pieces (a
call's id, type and name first, then its arguments in pieces); the finish reason comes last, per choice.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api_client import AsyncJobHandle
from engines.errors import InferqError
from gateway.access import tenant_of
from gateway.chat_schemas import ChatCompletionRequest
from gateway.disconnect import unless_client_leaves
from gateway.errors import api_error_of
from gateway.fleet import inferq_client, require_served
from gateway.idempotency import idempotency_key, on_client_leaving
from gateway.messages import chat_messages
from gateway.openai_shapes import chat_logprobs, chat_tool_call_deltas, chat_tool_calls, usage
from gateway.record_tokens import with_unstreamed_answers
from gateway.sse import DONE_FRAME, EventStreamResponse, data_frame, run_to_end_or
from gateway.strict_json import StrictJsonRoute
from tasks.errors import JobRestarted, error_from_info
from tasks.schemas import FinalEvent, JobRecord, RestartEvent, TokenEvent

log = logging.getLogger(__name__)
router = APIRouter(route_class=StrictJsonRoute)

COMPLETION_PREFIX = "chatcmpl-"


@router.post("/v1/chat/completions")
async def create_chat_completion(body: ChatCompletionRequest, request: Request):
    client, tenant = inferq_client(request), tenant_of(request)
    priority = tenant.priority(body.priority)  # a key's cap on urgency: a 400 past it
    request.state.field_names = field_names = body.field_names()
    options = body.job_options()
    messages = chat_messages(body.messages, client.settings.media_remote_urls)
    await require_served(client, body.model, "chat", options.get("max_new_tokens"))
    handle = await client.submit_chat(
        messages, body.model, priority=priority, owner=tenant.name, quota=tenant.quota, stream=body.stream,
        idempotency_key=idempotency_key(request), **options,
    )  # fmt: skip
    log.info("chat job %s for %s (tenant %s, user %s)", handle.id, body.model, tenant.name, body.user)
    if body.stream:
        chunks = _chunks(handle, body.include_usage, field_names)
        # A client that leaves takes its job with it: nobody else will read this answer.
        return EventStreamResponse(run_to_end_or(chunks, on_client_leaving(request, handle)), handle.id)
    record = await unless_client_leaves(request, handle.result(), on_client_leaving(request, handle))
    return JSONResponse(completion_object(record))


def completion_object(record: JobRecord) -> dict[str, Any]:
    """A chat completion, as the route answers it and a batch's output line holds it."""
    choices = []
    for index, response in enumerate(record.responses):
        message: dict[str, Any] = {
            "role": "assistant",
            # OpenAI's: no text beside tool calls is null, not ""
            "content": response.response_text if response.response_text or not response.tool_calls else None,
        }
        if response.tool_calls:
            message["tool_calls"] = chat_tool_calls(response.tool_calls)
        if response.reasoning_text is not None:
            message["reasoning_content"] = response.reasoning_text
        choices.append(
            {
                "index": index,
                "message": message,
                "finish_reason": response.finish_reason,
                "logprobs": chat_logprobs(response.logprobs),
            }
        )
    header = _header(record.job_id, record.model, record.timings.queued_at, "chat.completion")
    return {**header, "choices": choices, "usage": usage(record)}


async def _chunks(handle: AsyncJobHandle, include_usage: bool, field_names: dict[str, str]) -> AsyncIterator[str]:
    header = _header(handle.id, handle.meta.model, handle.meta.queued_at, "chat.completion.chunk")
    greeted: set[int] = set()
    aborted: set[int] = set()
    streamed = False

    def chunk(index: int, delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> str:
        choice = {"index": index, "delta": delta, "finish_reason": finish_reason, **extra}
        return data_frame({**header, "choices": [choice]})

    try:
        async for event in with_unstreamed_answers(handle.events()):
            if isinstance(event, TokenEvent):
                if event.index not in greeted:  # each choice starts with its role
                    greeted.add(event.index)
                    yield chunk(event.index, {"role": "assistant", "content": ""})
                if event.reasoning:
                    streamed = True
                    yield chunk(event.index, {"reasoning_content": event.reasoning})
                if event.text or event.logprobs:
                    streamed = True
                    yield chunk(event.index, {"content": event.text}, logprobs=chat_logprobs(event.logprobs))
                if event.tool_calls:
                    streamed = True
                    yield chunk(event.index, {"tool_calls": chat_tool_call_deltas(event.tool_calls)})
                if event.finish_reason == "abort":
                    aborted.add(event.index)  # a cancel or a time limit: the error frame below says so
                elif event.finish_reason is not None:
                    yield chunk(event.index, {}, event.finish_reason)
            elif isinstance(event, RestartEvent):
                if streamed:
                    raise JobRestarted(f"job {handle.id} restarted on another worker; the text streamed so far is void")
            elif isinstance(event, FinalEvent):
                record = event.record
                if record.error is not None:
                    raise error_from_info(record.error, record)
                for index in sorted(aborted):  # the engine ended it, and the job still succeeded: say so
                    yield chunk(index, {}, "abort")
                if include_usage:
                    yield data_frame({**header, "choices": [], "usage": usage(record)})
    except InferqError as error:
        # The status line went out with the first frame: the error travels in the stream, as OpenAI's does.
        yield data_frame(api_error_of(error, field_names).body())
        return
    yield DONE_FRAME


def _header(job_id: str, model: str, queued_at: float, kind: str) -> dict[str, Any]:
    return {"id": f"{COMPLETION_PREFIX}{job_id}", "object": kind, "created": int(queued_at), "model": model,
            "system_fingerprint": None}  # fmt: skip
