"""A request that waits for its job (no stream) notices when its client leaves, and cancels the job.

Starlette tells an endpoint of a disconnect only through `receive()`, which nothing reads while the
endpoint awaits a result; so the wait races a reader of `receive()`. Nobody else would read the answer:
the job is cancelled in its engine (background responses, meant to outlive their client, never come here).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastapi import Request

T = TypeVar("T")


class ClientLeft(Exception):
    """The client disconnected before its answer was ready; its job was cancelled."""


async def unless_client_leaves(request: Request, work: Awaitable[T], on_leave: Callable[[], Awaitable[None]]) -> T:
    result = asyncio.ensure_future(work)
    departure = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({result, departure}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        departure.cancel()
        if not result.done():
            result.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await result
    if result.cancelled():
        await asyncio.shield(on_leave())
        raise ClientLeft()
    return result.result()


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
