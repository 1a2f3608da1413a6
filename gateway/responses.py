"""The Responses API: `POST /v1/responses` (with `background`), `GET /v1/responses/{id}` (with
`stream=true&starting_after=N`) and `POST /v1/responses/{id}/cancel`. Each response is a chat job."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from api_client import AsyncInferQClient, AsyncJobHandle
from engines.errors import InferqError
from gateway.access import find_owned_job, tenant_of
from gateway.disconnect import unless_client_leaves
from gateway.errors import ApiError, api_error_of
from gateway.fleet import inferq_client, require_served
from gateway.idempotency import idempotency_key, on_client_leaving
from gateway.messages import response_input
from gateway.record_tokens import RECORD_SEQ, with_unstreamed_answers
from gateway.response_events import ResponseEventBuilder
from gateway.response_objects import job_id_of, response_object
from gateway.responses_schemas import CreateResponseRequest
from gateway.sse import DONE_FRAME, EventStreamResponse, named_frame, run_to_end_or
from gateway.strict_json import StrictJsonRoute
from gateway.tenants import Tenant
from tasks.errors import error_from_info
from tasks.schemas import FinalEvent, TokenEvent

log = logging.getLogger(__name__)
router = APIRouter(route_class=StrictJsonRoute)
FIELD_NAMES = {"max_new_tokens": "max_output_tokens", "system": "instructions", "logprobs": "top_logprobs",
               "response_format": "text"}  # fmt: skip

# How long `cancel` waits for the worker to write the record that holds the partial answer.
CANCEL_WAIT_S = 10.0


@router.post("/v1/responses")
async def create_response(body: CreateResponseRequest, request: Request):
    client, tenant = inferq_client(request), tenant_of(request)
    priority = tenant.priority(body.priority)  # a key's cap on urgency: a 400 past it
    request.state.field_names = FIELD_NAMES
    options = body.job_options()
    messages = response_input(body.input, client.settings.media_remote_urls)
    await require_served(client, body.model, "chat", options.get("max_new_tokens"))
    handle = await client.submit_chat(
        messages, body.model, priority=priority, owner=tenant.name, quota=tenant.quota, stream=True,
        echo=body.echo(), idempotency_key=idempotency_key(request), **options,
    )  # fmt: skip
    log.info("response job %s for %s (tenant %s, background %s)", handle.id, body.model, tenant.name, body.background)
    if body.stream:
        frames = _frames(handle, starting_after=-1)
        if body.background:
            return EventStreamResponse(frames, handle.id)  # it runs on when the client leaves, to be resumed
        return EventStreamResponse(run_to_end_or(frames, on_client_leaving(request, handle)), handle.id)
    if body.background:
        return JSONResponse(response_object(handle.meta, None))
    record = await unless_client_leaves(request, _record_when_done(handle), on_client_leaving(request, handle))
    if record.error is not None and record.status != "cancelled":
        raise error_from_info(record.error, record)
    return JSONResponse(response_object(handle.meta, record))


@router.get("/v1/responses/{response_id}")
async def retrieve_response(
    response_id: str,
    request: Request,
    stream: bool = False,
    starting_after: int = Query(-1, ge=-1, description="the last sequence_number the client has"),
):
    handle = await _find(inferq_client(request), response_id, tenant_of(request))
    if stream:
        return EventStreamResponse(_frames(handle, starting_after), handle.id)
    return JSONResponse(await _current(inferq_client(request), handle))


@router.post("/v1/responses/{response_id}/cancel")
async def cancel_response(response_id: str, request: Request):
    client = inferq_client(request)
    handle = await _find(client, response_id, tenant_of(request))
    await handle.cancel()
    try:
        async with asyncio.timeout(CANCEL_WAIT_S):
            await _record_when_done(handle)
    except TimeoutError:
        pass  # its worker has not answered the cancel yet: the response still says in_progress
    return JSONResponse(await _current(client, handle))


async def _find(client: AsyncInferQClient, response_id: str, tenant: Tenant) -> AsyncJobHandle:
    """The response's job, if this tenant may see it; another tenant's is a 404 like one that never was."""
    job_id = job_id_of(response_id)
    handle = None if job_id is None else await find_owned_job(client, job_id, tenant)
    # An unstored response (store: false) is found by nobody, as OpenAI's: its job still runs to its end.
    if handle is None or handle.meta.kind != "chat" or (handle.meta.echo or {}).get("store") is False:
        raise ApiError(404, f"no response {response_id!r} (or it is older than the record TTL)",
                       type="invalid_request_error", param="response_id", code="not_found")  # fmt: skip
    return handle


async def _current(client: AsyncInferQClient, handle: AsyncJobHandle) -> dict:
    record = await handle.record()
    running = record is None and await client.store.is_running(handle.id)
    return response_object(handle.meta, record, "in_progress" if running else "queued")


async def _record_when_done(handle: AsyncJobHandle):
    async for event in handle.events():
        if isinstance(event, FinalEvent):
            return event.record
    raise AssertionError("a job's events end with its final event")


async def _frames(handle: AsyncJobHandle, starting_after: int) -> AsyncIterator[str]:
    """The stream from the start of the job's log; what the client already has is dropped here."""
    builder = ResponseEventBuilder(handle.meta)
    opening = builder.opening()
    for event in opening:
        if event["sequence_number"] > starting_after:
            yield named_frame(event)
    rebuilt = False  # the answer came from the record (the log expired): its events numbered from the start
    try:
        async for job_event in with_unstreamed_answers(handle.events()):
            rebuilt = rebuilt or (isinstance(job_event, TokenEvent) and job_event.seq == RECORD_SEQ)
            events = builder.on_event(job_event)
            if len(opening) <= starting_after < builder.attempt_starts_at:
                # the client resumes from the answer of an attempt the job restarted from: that text is void
                yield named_frame(builder.voided(after=starting_after))
                yield DONE_FRAME
                return
            for event in events:
                if event["sequence_number"] > starting_after:
                    yield named_frame(event)
            if builder.ended:
                if rebuilt and events[-1]["sequence_number"] <= starting_after:
                    # Rebuilt from the record (the log expired), numbered from the start: the client resuming
                    # past that number still gets the end, numbered after what it has.
                    yield named_frame({**events[-1], "sequence_number": starting_after + 1})
                yield DONE_FRAME  # the Open Responses stream's end
                return
    except InferqError as error:  # the job's record or meta vanished, say: the stream ends saying so
        yield named_frame(builder.error(api_error_of(error, FIELD_NAMES), after=starting_after))
        yield DONE_FRAME
