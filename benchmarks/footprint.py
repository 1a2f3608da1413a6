"""Client footprint: the Redis connections and resident memory of one client while N jobs wait for a
worker that is held busy (its two slots run `[hold]` jobs, the echo engine's "never finish" directive),
each job with a task awaiting its result. Then every job is cancelled."""

from __future__ import annotations

import asyncio
import contextlib

import psutil
from rich.progress import Progress

from api_client import AsyncInferQClient, JobCancelled
from benchmarks.config import BenchConfig
from benchmarks.results import Row, Target
from benchmarks.rig import Rig

HELD_CHAT = [{"role": "user", "content": "[hold]"}]
SAMPLE_EVERY_S = 0.5
SETTLE_S = 2.0  # lets the last waiters subscribe and read their logs before the snapshot
SUBMITS_AT_ONCE = 256


async def run(rig: Rig, config: BenchConfig, progress: Progress) -> list[Row]:
    rig.worker(config.echo_held)
    process = psutil.Process()
    # Sockets other parts left open (pools closing late) are not this client's: count only new ones.
    sockets_before = _redis_sockets(process, rig.redis_port)
    rss_before_mb = process.memory_info().rss / 2**20
    num_jobs = config.waiting_jobs
    peak_connections = 0

    async def sample_connections() -> None:
        nonlocal peak_connections
        while True:
            peak_connections = max(peak_connections, len(_redis_sockets(process, rig.redis_port) - sockets_before))
            await asyncio.sleep(SAMPLE_EVERY_S)

    sampler = asyncio.create_task(sample_connections())
    async with AsyncInferQClient(rig.redis_url, model=config.echo_held.name) as client:
        submitting = progress.add_task(f"footprint: submitting {num_jobs} jobs that wait", total=num_jobs)
        handles = []
        for start in range(0, num_jobs, SUBMITS_AT_ONCE):
            batch = range(start, min(start + SUBMITS_AT_ONCE, num_jobs))
            handles += await asyncio.gather(*[client.submit_chat(HELD_CHAT, stream=False) for _ in batch])
            progress.advance(submitting, len(batch))
        waiters = [asyncio.create_task(handle.result()) for handle in handles]
        await asyncio.sleep(SETTLE_S)
        waiting_connections = len(_redis_sockets(process, rig.redis_port) - sockets_before)
        rss_mb = process.memory_info().rss / 2**20
        cancelling = progress.add_task(f"footprint: cancelling {num_jobs} jobs", total=num_jobs)
        for start in range(0, num_jobs, SUBMITS_AT_ONCE):
            batch = handles[start : start + SUBMITS_AT_ONCE]
            await asyncio.gather(*[handle.cancel() for handle in batch])
            progress.advance(cancelling, len(batch))
        outcomes = await asyncio.gather(*waiters, return_exceptions=True)
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampler
    not_cancelled = [outcome for outcome in outcomes if not isinstance(outcome, JobCancelled)]
    if not_cancelled:
        raise RuntimeError(f"{len(not_cancelled)} waiting jobs did not end cancelled, e.g. {not_cancelled[0]!r}")
    return [
        Row(
            "footprint",
            f"client Redis connections, {num_jobs} jobs waiting",
            "conns",
            waiting_connections,
            target=Target("value", "<=", 8),
        ),
        Row("footprint", "client Redis connections, peak (submit, wait, cancel)", "conns", peak_connections),
        Row("footprint", f"client RSS, {num_jobs} jobs waiting", "MiB", rss_mb, rss_before_mb, "before submitting"),
        Row("footprint", "client RSS per waiting job", "KiB", (rss_mb - rss_before_mb) * 1024 / num_jobs),
    ]


def _redis_sockets(process: psutil.Process, redis_port: int) -> set[tuple[str, int]]:
    """The local addresses of this process's TCP connections to Redis."""
    return {conn.laddr for conn in process.net_connections("tcp") if conn.raddr and conn.raddr.port == redis_port}
