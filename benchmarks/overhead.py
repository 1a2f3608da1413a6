"""Queue overhead: time to first token and end-to-end latency of one chat at a time, through inferq and
with the same engine called directly, next to a bare Celery no-op round trip on the same Redis.

The three are sampled in turn (queue, direct, Celery, queue, ...) so that load from elsewhere on the
machine falls on all of them alike.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from rich.progress import Progress

from api_client import AsyncInferQClient
from benchmarks.celery_client import CeleryNoopClient
from benchmarks.config import BenchConfig, EngineSpec
from benchmarks.results import Row, Target, percentile
from benchmarks.rig import Rig

STORY = "Write a short story about a lighthouse."
PROMPTS = {
    "echo": "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen",
    "huggingface": STORY,
    "vllm": STORY,
}
NEW_TOKENS = 16


async def run(rig: Rig, config: BenchConfig, progress: Progress) -> list[Row]:
    rig.noop_worker(config.worker_concurrency)
    specs = [config.echo if name == "echo" else config.hf for name in config.overhead_engines]
    celery_ms: list[float] = []
    rows: list[Row] = []
    async with CeleryNoopClient(rig.redis_url) as celery:
        for spec in specs:
            rig.worker(spec)
            engine = await rig.direct(spec)
            messages = [{"role": "user", "content": PROMPTS[spec.backend]}]
            params = {"temperature": 0, "max_new_tokens": NEW_TOKENS}
            queued: dict[str, list[float]] = {"ttft": [], "e2e": []}
            direct: dict[str, list[float]] = {"ttft": [], "e2e": []}
            async with AsyncInferQClient(rig.redis_url, model=spec.name) as client:
                await _timed(client.astream_chat(messages, **params))  # warm-up: connections, subscriber
                await _timed(engine.stream_chat(messages, **params))
                await celery.round_trip()
                samples = config.samples if spec.backend == "echo" else config.hf_samples
                steps = progress.add_task(f"overhead: {spec.backend}, one chat at a time", total=samples)
                round_trips_ms: list[float] = []  # this engine's own baseline, taken between its samples
                for _ in range(samples):
                    _add(queued, await _timed(client.astream_chat(messages, **params)))
                    _add(direct, await _timed(engine.stream_chat(messages, **params)))
                    started = time.perf_counter()
                    await celery.round_trip()
                    round_trips_ms.append((time.perf_counter() - started) * 1000)
                    progress.advance(steps)
            rows += _engine_rows(spec, queued, direct, round_trips_ms)
            celery_ms += round_trips_ms
    rows.append(Row("overhead", "bare Celery no-op round trip p50", "ms", percentile(celery_ms, 50)))
    rows.append(Row("overhead", "bare Celery no-op round trip p99", "ms", percentile(celery_ms, 99)))
    return rows


def _engine_rows(spec: EngineSpec, queued: dict, direct: dict, celery_ms: list[float]) -> list[Row]:
    rows = []
    for key, label in (("ttft", "TTFT"), ("e2e", f"end-to-end ({NEW_TOKENS} tok)")):
        for q in (50, 99):
            case = f"{spec.backend}: {label} p{q}"
            rows.append(Row("overhead", case, "ms", percentile(queued[key], q), percentile(direct[key], q), "direct"))
    added_ms = percentile(queued["ttft"], 50) - percentile(direct["ttft"], 50)
    rows.append(
        Row(
            "overhead",
            f"{spec.backend}: TTFT p50 the queue adds",
            "ms",
            added_ms,
            percentile(celery_ms, 50),
            "Celery round trip",
            Target("ratio", "<=", 1.0),
        )
    )
    return rows


async def _timed(pieces: AsyncIterator[str]) -> tuple[float, float]:
    """(time to the first piece, time to the end) in ms."""
    started = time.perf_counter()
    first_ms = None
    async for _ in pieces:
        if first_ms is None:
            first_ms = (time.perf_counter() - started) * 1000
    return first_ms, (time.perf_counter() - started) * 1000


def _add(samples: dict[str, list[float]], timed: tuple[float, float]) -> None:
    samples["ttft"].append(timed[0])
    samples["e2e"].append(timed[1])
