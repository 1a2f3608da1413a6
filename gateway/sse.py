"""Server-sent events: the frames, and a response that notices a client leaving even while no frame is due.

Starlette's StreamingResponse, under ASGI 2.4 servers (uvicorn), learns of a disconnect only when a
send fails, and a job that is quiet (queued, or thinking) sends nothing: its client could leave and
the job would run on in the engine. This response listens for the disconnect itself.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

DONE_FRAME = "data: [DONE]\n\n"
JOB_ID_HEADER = "X-Inferq-Job-Id"


def data_frame(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


def named_frame(payload: dict[str, Any]) -> str:
    """A Responses API frame: `event:` carries the payload's own type."""
    return f"event: {payload['type']}\n{data_frame(payload)}"


class EventStreamResponse(StreamingResponse):
    def __init__(self, frames: AsyncIterator[str], job_id: str) -> None:
        # no-transform / X-Accel-Buffering: proxies must pass each frame on as it comes. The job id is
        # there before the first frame, for a client that stops a job which has not spoken yet.
        headers = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no", JOB_ID_HEADER: job_id}
        super().__init__(frames, media_type="text/event-stream", headers=headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as task_group:

            async def stream_then_stop() -> None:
                await self.stream_response(send)
                task_group.cancel_scope.cancel()

            task_group.start_soon(stream_then_stop)
            await self.listen_for_disconnect(receive)
            task_group.cancel_scope.cancel()  # the client left: the frames' generator is cancelled


async def run_to_end_or(frames: AsyncIterator[str], on_early_exit: Callable[[], Awaitable[None]]) -> AsyncIterator[str]:
    """Passes the frames on; if the stream ends before they do (the client left), runs `on_early_exit`."""
    finished = False
    try:
        async for frame in frames:
            yield frame
        finished = True
    finally:
        if not finished:
            # shielded: the task that runs this is being cancelled, and the job must still be stopped
            with anyio.CancelScope(shield=True):
                await on_early_exit()
