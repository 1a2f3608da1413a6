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


# A test of a time limit (a timeout, a deadline, a runtime cap) needs the job to have started and streamed its
# first words before the limit: a loaded machine can hold a job in the queue, or stall its worker, that long.
# Each such test waits out its limit, so the first is short (an echo job streams within ms of a quiet start) and
# the next ones are the room a loaded machine needs (seconds, seen).
GROWING_LIMITS_S = (5, 30, 240)


def streamed_text(record) -> str:
    """What a job's record kept of its answer: "" where it never started or streamed nothing before its limit
    (such a run proves nothing about the limit, and is tried again with the next of GROWING_LIMITS_S)."""
    return record.responses[0].response_text if record.responses else ""
