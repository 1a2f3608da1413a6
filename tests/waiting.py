"""Waiting for a condition, never for a time: the bound only turns a hang into a failure that says why."""

from __future__ import annotations

import asyncio
import inspect
import time


async def until(condition, failure: str, bound_s: float = 300) -> None:
    """Waits for `condition()` (a value or an awaitable), checking every 0.05 s; the bound only turns a
    hang into a failure that says `failure`."""
    give_up_at = time.monotonic() + bound_s
    while not (await result if inspect.isawaitable(result := condition()) else result):
        assert time.monotonic() < give_up_at, failure
        await asyncio.sleep(0.05)
