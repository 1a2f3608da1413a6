"""Plumbing throughput: tiny jobs through inferq on the echo engine (no model) against bare Celery no-op
tasks, from one client, at each number of jobs in flight. Both workers run the same Celery thread pool."""

from __future__ import annotations

import time

from rich.progress import Progress

from api_client import AsyncInferQClient
from benchmarks.celery_client import CeleryNoopClient
from benchmarks.config import BenchConfig
from benchmarks.load import jobs_per_s
from benchmarks.proc import cpu_s, redis_cpu_s
from benchmarks.results import Row, Target
from benchmarks.rig import Rig

TINY_CHAT = [{"role": "user", "content": "ok"}]
WARM_UP_JOBS = 8


async def run(rig: Rig, config: BenchConfig, progress: Progress) -> list[Row]:
    workers = {"inferq": rig.worker(config.echo).pid, "celery": rig.noop_worker(config.worker_concurrency).pid}
    # CPU per job, the worker's, this client's and Redis's, summed over every level: what bounds jobs/s on few
    # cores (Redis's counts the round trips inferq adds: the meta, the admit and finish scripts, the record)
    worker_cpu_s = {"inferq": 0.0, "celery": 0.0}
    client_cpu_s = {"inferq": 0.0, "celery": 0.0}
    redis_cpu = {"inferq": 0.0, "celery": 0.0}
    total_jobs = 0
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
        for level, num_inflight in enumerate(config.inflight):
            # at least two rounds of the window, so the steady state is more than the ramp
            num_jobs = max(config.plumbing_jobs, 2 * num_inflight)
            sides = [("inferq", inferq_job), ("celery", celery_job)]
            if level % 2:
                sides.reverse()  # which side goes first alternates, so that drift falls on both alike
            order = ", then ".join(side for side, _ in sides)
            steps = progress.add_task(f"plumbing: {num_inflight} in flight ({order})", total=2 * num_jobs)
            rates = {}
            for side, one_job in sides:
                worker_before, client_before = cpu_s(workers[side]), time.process_time()
                redis_before = redis_cpu_s(rig.redis_url)
                rates[side] = await jobs_per_s(one_job, num_jobs, num_inflight, progress, steps)
                worker_cpu_s[side] += cpu_s(workers[side]) - worker_before
                client_cpu_s[side] += time.process_time() - client_before
                redis_cpu[side] += redis_cpu_s(rig.redis_url) - redis_before
            total_jobs += num_jobs
            rows.append(
                Row(
                    "plumbing",
                    f"echo jobs/s, {num_inflight} in flight",
                    "jobs/s",
                    rates["inferq"],
                    rates["celery"],
                    "bare Celery",
                    Target("ratio", ">=", 0.8),
                    load=num_inflight,
                )
            )
    for name, spent in (("worker", worker_cpu_s), ("client", client_cpu_s), ("Redis", redis_cpu)):
        inferq_ms, celery_ms = (spent[side] / total_jobs * 1000 for side in ("inferq", "celery"))
        rows.append(Row("plumbing", f"{name} CPU per echo job", "ms", inferq_ms, celery_ms, "bare Celery"))
    return rows
