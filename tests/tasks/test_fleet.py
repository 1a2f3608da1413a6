"""The fleet view: one scan a second for everything a process asks, except that a model missing from it gets
one fresh scan, so a worker that has just started is served at once."""

import asyncio
import time

from tasks.fleet import MISS_RESCAN_S, FleetView
from tasks.schemas import WorkerInfo


def _worker(model: str) -> WorkerInfo:
    return WorkerInfo(
        hostname=f"{model}@h",
        model=model,
        engine="echo",
        model_path=model,
        can_generate=True,
        host="h",
        pid=1,
        started_at=0.0,
        concurrency=1,
    )


class _Registry:
    """What the workers' announcements hold, counting how often the view reads them."""

    def __init__(self) -> None:
        self.live: list[WorkerInfo] = [_worker("echo")]
        self.scans = 0

    async def scan(self) -> list[WorkerInfo]:
        self.scans += 1
        return list(self.live)


async def test_a_worker_started_after_the_last_scan_is_served_at_once():
    registry = _Registry()
    view = FleetView(registry.scan)
    assert [info.model for info in await view.serving("echo")] == ["echo"]
    registry.live.append(_worker("new"))
    await asyncio.sleep(MISS_RESCAN_S * 1.5)
    assert [info.model for info in await view.serving("new")] == ["new"]
    assert registry.scans == 2


async def test_a_model_nobody_serves_never_becomes_a_scan_per_request():
    registry = _Registry()
    view = FleetView(registry.scan)
    started = time.monotonic()
    await asyncio.gather(*(view.serving("ghost") for _ in range(100)))
    # the first scan, then at most one fresh scan per MISS_RESCAN_S however slow the machine is
    assert registry.scans <= 2 + (time.monotonic() - started) / MISS_RESCAN_S
    scans = registry.scans
    assert await view.serving("echo") and registry.scans <= scans + 1  # a served model reads the cached view
