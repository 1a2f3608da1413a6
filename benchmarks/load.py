"""A closed loop: `num_inflight` lanes, each starting its next job as soon as its last one ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from rich.progress import Progress, TaskID


async def jobs_per_s(
    one_job: Callable[[int], Awaitable[object]], num_jobs: int, num_inflight: int, progress: Progress, steps: TaskID
) -> float:
    """Finished jobs per second, the ramp-up and the drain included (the whole run is timed)."""
    next_job = iter(range(num_jobs))

    async def lane() -> None:
        for index in next_job:
            await one_job(index)
            progress.advance(steps)

    started = time.perf_counter()
    await asyncio.gather(*[lane() for _ in range(min(num_inflight, num_jobs))])
    return num_jobs / (time.perf_counter() - started)
