"""Engine throughput through the queue: the same engine, N concurrent chats, through inferq and called
directly, and a burst of one-token chats from one client. Each figure is the median of `repeats` rounds,
and which side goes first alternates from round to round.

The queue's client runs in this process on the same cores as the worker, so it is part of the cost.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import NamedTuple

from rich.progress import Progress

from api_client import AsyncInferQClient
from benchmarks.config import BenchConfig
from benchmarks.results import Row, Target, median
from benchmarks.rig import Rig

TOPICS = ["dragon", "lighthouse", "robot", "garden", "comet", "violin", "desert", "library"]
# vLLM's CPU build: a KV cache it can take for granted, and every core for its model threads.
VLLM_CPU_ENV = {"VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_OMP_THREADS_BIND": f"0-{(os.cpu_count() or 1) - 1}"}


def use_vllm_cpu_env() -> None:
    """VLLM_CPU_ENV where the environment does not say otherwise; the workers started next inherit it."""
    for key, value in VLLM_CPU_ENV.items():
        os.environ.setdefault(key, value)


class Case(NamedTuple):
    name: str
    unit: str
    target: Target | None


def conversations(count: int) -> list[list[dict[str, str]]]:
    return [
        [{"role": "user", "content": f"Write a long story about a {TOPICS[i % len(TOPICS)]} (number {i})."}]
        for i in range(count)
    ]


async def run_hf(rig: Rig, config: BenchConfig, progress: Progress) -> list[Row]:
    spec = config.hf
    rig.worker(spec)
    direct = await rig.direct(spec)
    async with AsyncInferQClient(rig.redis_url, model=spec.name) as client:
        return await _measure("hf", config, progress, client.achat, direct.chat)


async def run_vllm(rig: Rig, config: BenchConfig, progress: Progress) -> list[Row]:
    """One side at a time (two vLLM engines at once would share the two cores), an engine start each, and
    `repeats` rounds that alternate which side goes first, so that drift over the run falls on both alike."""
    use_vllm_cpu_env()
    spec = config.vllm
    queued_runs: dict[Case, list[float]] = {}
    direct_runs: dict[Case, list[float]] = {}

    async def run_direct() -> None:
        direct = await rig.direct(spec)
        _merge(direct_runs, await _runs(config, progress, direct.chat, "vllm direct"))
        await rig.close_direct(spec)

    async def run_queued() -> None:
        rig.worker(spec)
        async with AsyncInferQClient(rig.redis_url, model=spec.name) as client:
            _merge(queued_runs, await _runs(config, progress, client.achat, "vllm through inferq"))
        rig.stop_worker(spec)

    for round_ in range(config.repeats):
        for side in (run_direct, run_queued) if round_ % 2 == 0 else (run_queued, run_direct):
            await side()
    return _rows("vllm", queued_runs, direct_runs)


async def _measure(part, config, progress, queued_chat, direct_chat) -> list[Row]:
    queued_runs: dict[Case, list[float]] = {}
    direct_runs: dict[Case, list[float]] = {}
    for round_ in range(config.repeats):  # which side goes first alternates, as drift falls on both alike
        sides = [(queued_runs, queued_chat, "through inferq"), (direct_runs, direct_chat, "direct")]
        for runs, chat, label in sides if round_ % 2 == 0 else reversed(sides):
            _merge(runs, await _runs(config, progress, chat, f"{part} {label}"))
    return _rows(part, queued_runs, direct_runs)


async def _runs(config: BenchConfig, progress: Progress, chat, label: str) -> dict[Case, list]:
    """One run of each size: tokens/s per concurrency, then the burst's jobs/s."""
    params = {"temperature": 0, "max_new_tokens": config.new_tokens}
    await asyncio.gather(*[chat(c, **params) for c in conversations(2)])  # warm-up
    figures: dict[Case, list[float]] = {}
    for concurrency in config.hf_concurrency:
        steps = progress.add_task(f"{label}: {concurrency} concurrent x {config.new_tokens} tok", total=concurrency)
        started = time.perf_counter()
        chats = [_advancing(chat(c, **params), progress, steps) for c in conversations(concurrency)]
        answers = await asyncio.gather(*chats)
        tokens = sum(responses[0].response_length for responses in answers)
        target = Target("ratio", ">=", 0.95) if concurrency >= 16 else None
        case = Case(f"tok/s, {concurrency} concurrent x {config.new_tokens} tok", "tok/s", target)
        figures[case] = [tokens / (time.perf_counter() - started)]
    steps = progress.add_task(f"{label}: burst of {config.burst} one-token chats", total=config.burst)
    started = time.perf_counter()
    one_token = {"temperature": 0, "max_new_tokens": 1}
    await asyncio.gather(*[_advancing(chat(c, **one_token), progress, steps) for c in conversations(config.burst)])
    burst = Case(f"jobs/s, burst of {config.burst} one-token chats", "jobs/s", Target("ratio", ">=", 0.8))
    figures[burst] = [config.burst / (time.perf_counter() - started)]
    return figures


async def _advancing(awaitable, progress: Progress, steps):
    result = await awaitable
    progress.advance(steps)
    return result


def _merge(into: dict[Case, list[float]], figures: dict[Case, list[float]]) -> None:
    for case, values in figures.items():
        into.setdefault(case, []).extend(values)


def _rows(part: str, queued: dict[Case, list[float]], direct: dict[Case, list[float]]) -> list[Row]:
    return [
        Row(part, case.name, case.unit, median(values), median(direct[case]), "direct", case.target)
        for case, values in queued.items()
    ]
