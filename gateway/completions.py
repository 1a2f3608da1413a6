"""`POST /v1/completions`: the legacy text completion, a raw prompt the model continues (no chat template).

One prompt a request (a list of several is refused by name: send one request each); `echo` puts the
prompt before the text (not with logprobs, which would need the prompt's own log probabilities);
`logprobs` is OpenAI's integer (0-5 alternatives). vLLM's extensions (`ignore_eos`, `min_tokens`...) apply.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from api_client import AsyncJobHandle
from engines.errors import InferqError, InvalidRequest
from engines.schemas import MAX_N
from gateway.access import tenant_of
from gateway.chat_schemas import StopStrings, StreamOptions
from gateway.disconnect import unless_client_leaves
from gateway.errors import api_error_of
from gateway.fleet import inferq_client, require_served
from gateway.idempotency import idempotency_key, on_client_leaving
from gateway.openai_params import MAX_TOKENS_BOUND, SamplingParameters
from gateway.openai_shapes import completion_logprobs, usage
from gateway.record_tokens import with_unstreamed_answers
from gateway.refusals import unsupported
from gateway.sse import DONE_FRAME, EventStreamResponse, data_frame, run_to_end_or
from gateway.strict_json import StrictJsonRoute
from tasks.errors import JobRestarted, error_from_info
from tasks.schemas import MAX_PROMPT_CHARS, FinalEvent, JobRecord, RestartEvent, TokenEvent

log = logging.getLogger(__name__)
router = APIRouter(route_class=StrictJsonRoute)

COMPLETION_PREFIX = "cmpl-"
OPENAI_DEFAULT_MAX_TOKENS = 16  # the legacy endpoint's default, unlike chat's
MAX_COMPLETION_LOGPROBS = 5


class CompletionRequest(SamplingParameters):
    model: str = Field(min_length=1, max_length=128)
    prompt: str | list[str]
    max_tokens: int | None = Field(OPENAI_DEFAULT_MAX_TOKENS, ge=1, le=MAX_TOKENS_BOUND)
    n: int | None = Field(None, ge=1, le=MAX_N)
    stop: StopStrings | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: int | None = Field(None, ge=0, le=MAX_COMPLETION_LOGPROBS)
    echo: bool = False
    best_of: unsupported(1) = None
    suffix: unsupported("") = None

    def prompt_text(self) -> str:
        prompt = self.prompt
        if isinstance(prompt, list):
            if len(prompt) != 1:
                raise InvalidRequest("one prompt a request: send several requests", field="prompt")
            prompt = prompt[0]
        if not prompt or len(prompt) > MAX_PROMPT_CHARS:
            raise InvalidRequest(f"must be 1 to {MAX_PROMPT_CHARS} characters", field="prompt")
        return prompt

    def job_options(self) -> dict[str, Any]:
        if self.stream_options is not None and not self.stream:
            raise InvalidRequest("only allowed when stream is true", field="stream_options")
        if self.echo and self.logprobs is not None:
            raise InvalidRequest(
                "echo with logprobs needs the prompt's log probabilities; inferq has none", field="echo"
            )
        options = {
            **self.sampling_options(),
            "n": self.n,
            "max_new_tokens": self.max_tokens,
            "stop": self.stop,
            "logprobs": self.logprobs,
        }
        return {name: value for name, value in options.items() if value is not None}


FIELD_NAMES = {"max_new_tokens": "max_tokens", "num_return_sequences": "n"}


@router.post("/v1/completions")
async def create_completion(body: CompletionRequest, request: Request):
    client, tenant = inferq_client(request), tenant_of(request)
    priority = tenant.priority(body.priority)  # a key's cap on urgency: a 400 past it
    request.state.field_names = FIELD_NAMES
    prompt = body.prompt_text()
    options = body.job_options()
    await require_served(client, body.model, "chat", options.get("max_new_tokens"))
    handle = await client.submit_completion(
        prompt, body.model, priority=priority, owner=tenant.name, quota=tenant.quota, stream=body.stream,
        idempotency_key=idempotency_key(request), **options,
    )  # fmt: skip
    log.info("completion job %s for %s (tenant %s, user %s)", handle.id, body.model, tenant.name, body.user)
    echoed = prompt if body.echo else ""
    include_usage = body.stream_options is not None and body.stream_options.include_usage
    if body.stream:
        return EventStreamResponse(
            run_to_end_or(_chunks(handle, echoed, include_usage), on_client_leaving(request, handle)), handle.id
        )
    record = await unless_client_leaves(request, handle.result(), on_client_leaving(request, handle))
    return JSONResponse(text_completion_object(record, echoed))


def text_completion_object(record: JobRecord, echoed: str) -> dict[str, Any]:
    """The whole answer's body (a batch line's too); `echoed` is the prompt when the request asked for echo."""
    choices = [
        {
            "index": index,
            "text": echoed + response.response_text,
            "logprobs": completion_logprobs(response.logprobs, len(echoed)),
            "finish_reason": response.finish_reason,
        }
        for index, response in enumerate(record.responses)
    ]
    return {
        **_header(record.job_id, record.model, record.timings.queued_at),
        "choices": choices,
        "usage": usage(record),
    }


async def _chunks(handle: AsyncJobHandle, echoed: str, include_usage: bool) -> AsyncIterator[str]:
    header = _header(handle.id, handle.meta.model, handle.meta.queued_at)
    started: set[int] = set()
    offsets: dict[int, int] = {}
    aborted: set[int] = set()
    streamed = False
    try:
        async for event in with_unstreamed_answers(handle.events()):
            if isinstance(event, TokenEvent):
                text = event.text
                if event.index not in started:
                    started.add(event.index)
                    text = echoed + text
                    offsets[event.index] = 0
                streamed = streamed or bool(text)
                choice = {
                    "index": event.index,
                    "text": text,
                    "logprobs": completion_logprobs(event.logprobs, offsets[event.index] + len(echoed)),
                    # an aborted answer (cancelled, out of time) ends in the error frame below, not a finish
                    "finish_reason": None if event.finish_reason == "abort" else event.finish_reason,
                }
                offsets[event.index] += len(event.text)
                if event.finish_reason == "abort":
                    aborted.add(event.index)
                yield data_frame({**header, "choices": [choice]})
            elif isinstance(event, RestartEvent):
                if streamed:
                    raise JobRestarted(f"job {handle.id} restarted on another worker; the text streamed so far is void")
            elif isinstance(event, FinalEvent):
                if event.record.error is not None:
                    raise error_from_info(event.record.error, event.record)
                for index in sorted(aborted):  # the engine ended it, and the job still succeeded: say so
                    yield data_frame({**header, "choices": [{"index": index, "text": "", "logprobs": None,
                                                             "finish_reason": "abort"}]})  # fmt: skip
                if include_usage:
                    yield data_frame({**header, "choices": [], "usage": usage(event.record)})
    except InferqError as error:
        yield data_frame(api_error_of(error, FIELD_NAMES).body())
        return
    yield DONE_FRAME


def _header(job_id: str, model: str, queued_at: float) -> dict[str, Any]:
    return {
        "id": f"{COMPLETION_PREFIX}{job_id}",
        "object": "text_completion",
        "created": int(queued_at),
        "model": model,
    }
