"""Which models the live workers serve, as one process sees them: one registry scan a second, shared
by every job that process waits for, and how long each model has gone without a live worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from tasks.schemas import WorkerInfo

MAX_AGE_S = 1.0
# A model missing from the view may have a worker that started since the last scan: one fresh scan decides,
# at most this often, so that requests naming a model nobody serves never become a scan each.
MISS_RESCAN_S = 0.1


class FleetView:
    def __init__(self, scan: Callable[[], Awaitable[list[WorkerInfo]]]) -> None:
        self._scan = scan
        self._workers: list[WorkerInfo] = []
        self._scanned_at = float("-inf")
        self._unserved_since: dict[str, float] = {}
        self._lock = asyncio.Lock()  # thousands of waiters asking at once make one scan

    async def workers(self) -> list[WorkerInfo]:
        async with self._lock:
            if time.monotonic() - self._scanned_at > MAX_AGE_S:
                await self._rescan()
        return self._workers

    async def serving(self, model: str) -> list[WorkerInfo]:
        """The live workers of `model`; a worker started since the last scan counts at once."""
        workers = await self.workers()
        if not any(info.model == model for info in workers):
            async with self._lock:
                if time.monotonic() - self._scanned_at > MISS_RESCAN_S:
                    await self._rescan()
            workers = self._workers
        return [info for info in workers if info.model == model]

    async def _rescan(self) -> None:
        self._workers = await self._scan()
        self._scanned_at = time.monotonic()
        served = self.served()
        for model in list(self._unserved_since):
            if model in served:
                del self._unserved_since[model]

    def served(self) -> set[str]:
        return {info.model for info in self._workers}

    async def unserved_for_s(self, model: str) -> float:
        """0 while a live worker serves `model`; otherwise seconds since this process first saw none."""
        await self.workers()
        if model in self.served():
            return 0.0
        since = self._unserved_since.setdefault(model, time.monotonic())
        return time.monotonic() - since

    async def queue_cap(self, model: str) -> int | None:
        """The smallest `max_queued` the live workers of `model` announce; None when none sets one."""
        caps = [info.max_queued for info in await self.workers() if info.model == model and info.max_queued]
        return min(caps, default=None)
