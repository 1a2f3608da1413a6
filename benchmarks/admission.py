"""Admission by capacity, measured: one vLLM worker and N concurrent chats, first with a fixed 16 Celery
threads (`--concurrency 16`, what every worker took before), then admitting the engine's capacity (vLLM's
max_num_seqs). One worker at a time: two vLLM engines would share the cores.
"""

from __future__ import annotations

import asyncio
import time

from rich.progress import Progress

from api_client import AsyncInferQClient
from benchmarks.config import BenchConfig, EngineSpec
from benchmarks.engine_queue import conversations, use_vllm_cpu_env
from benchmarks.results import Row
from benchmarks.rig import Rig

FIXED_THREADS = 16


async def run(rig: Rig, config: BenchConfig, progress: Progress) -> list[Row]:
    use_vllm_cpu_env()
    engine_args = {"enforce_eager": True}
    before = EngineSpec("bench-vllm-fixed", "vllm", config.model, engine_args, FIXED_THREADS)
    after = EngineSpec("bench-vllm-capacity", "vllm", config.model, engine_args, None)
    rates = [await _tokens_per_s(rig, spec, config, progress) for spec in (before, after)]
    jobs = config.admission_jobs
    case = f"tok/s, vLLM worker, {jobs} concurrent x {config.new_tokens} tok: engine capacity"
    return [Row("admission", case, "tok/s", rates[1], rates[0], f"--concurrency {FIXED_THREADS}", load=jobs)]


async def _tokens_per_s(rig: Rig, spec: EngineSpec, config: BenchConfig, progress: Progress) -> float:
    rig.worker(spec)
    params = {"temperature": 0, "max_new_tokens": config.new_tokens}
    label = f"vLLM worker, {spec.concurrency or 'capacity'} admitted"
    try:
        async with AsyncInferQClient(rig.redis_url, model=spec.name) as client:
            await asyncio.gather(*[client.achat(c, **params) for c in conversations(2)])  # warm-up
            steps = progress.add_task(f"{label}: {config.admission_jobs} concurrent", total=config.admission_jobs)

            async def chat(conversation):
                responses = await client.achat(conversation, **params)
                progress.advance(steps)
                return responses[0].response_length

            started = time.perf_counter()
            tokens = sum(await asyncio.gather(*[chat(c) for c in conversations(config.admission_jobs)]))
            return tokens / (time.perf_counter() - started)
    finally:
        rig.stop_worker(spec)
