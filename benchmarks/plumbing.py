"""Plumbing throughput: tiny jobs through inferq on the echo engine (no model) against bare Celery no-op
tasks, from one client, at each number of jobs in flight. Both workers run the same Celery thread pool."""

from __future__ import annotations

from rich.progress import Progress

from api_client import AsyncInferQClient
from benchmarks.celery_client import CeleryNoopClient
from benchmarks.config import BenchConfig
from benchmarks.load import jobs_per_s
from benchmarks.results import Row, Target
from benchmarks.rig import Rig

TINY_CHAT = [{"role": "user", "content": "ok"}]
WARM_UP_JOBS = 8


async def run(rig: Rig, config: BenchConfig, progress: Progress) -> list[Row]:
    rig.worker(config.echo)
    rig.noop_worker(config.worker_concurrency)
    rows = []
    async with (
        AsyncInferQClient(rig.redis_url, model=config.echo.name) as client,
        CeleryNoopClient(rig.redis_url) as celery,
    ):

        async def inferq_job(_: int) -> None:
            await client.achat(TINY_CHAT, max_new_tokens=1)

        async def celery_job(_: int) -> None:
            await celery.round_trip()

        for one_job in (inferq_job, celery_job):
            for index in range(WARM_UP_JOBS):
                await one_job(index)
        for num_inflight in config.inflight:
            # at least two rounds of the window, so the steady state is more than the ramp
            num_jobs = max(config.plumbing_jobs, 2 * num_inflight)
            steps = progress.add_task(f"plumbing: {num_inflight} in flight (inferq, then Celery)", total=2 * num_jobs)
            inferq = await jobs_per_s(inferq_job, num_jobs, num_inflight, progress, steps)
            bare = await jobs_per_s(celery_job, num_jobs, num_inflight, progress, steps)
            rows.append(
                Row(
                    "plumbing",
                    f"echo jobs/s, {num_inflight} in flight",
                    "jobs/s",
                    inferq,
                    bare,
                    "bare Celery",
                    Target("ratio", ">=", 0.8),
                    load=num_inflight,
                )
            )
    return rows
