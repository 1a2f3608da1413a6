"""Streaming cost: the worker's CPU per streamed token (its utime + stime, read from /proc), set against
the same jobs run unstreamed, on an engine that answers as fast as it can (so many tokens share each write:
the cost of a write spread thin; a slower engine's tokens each carry more of one); the script calls per
streamed token, every Redis client's (the worker writes what all its jobs produced while its last write was
in flight, in one script call); and how long an answer's first token takes from the engine to the client,
set against a bare Redis PUBLISH to a subscriber timed alongside, under the same load.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from redis.asyncio import Redis
from rich.progress import Progress

from api_client import AsyncInferQClient
from benchmarks.config import BenchConfig
from benchmarks.load import jobs_per_s
from benchmarks.proc import cpu_s
from benchmarks.results import Row, Target, percentile
from benchmarks.rig import Rig

STREAMS_AT_ONCE = 16
LATENCY_TOKENS = 32
PING_CHANNEL = "inferq:bench:ping"
PING_EVERY_S = 0.01


async def run(rig: Rig, config: BenchConfig, progress: Progress) -> list[Row]:
    return [*await _cpu_rows(rig, config, progress), *await _latency_rows(rig, config, progress)]


async def _cpu_rows(rig: Rig, config: BenchConfig, progress: Progress) -> list[Row]:
    worker = rig.worker(config.echo)
    words = " ".join(f"w{i}" for i in range(config.stream_tokens))
    chat = [{"role": "user", "content": words}]
    jobs_per_round = config.stream_jobs // 2
    num_tokens = jobs_per_round * 2 * config.stream_tokens
    redis = Redis.from_url(rig.redis_url)
    async with AsyncInferQClient(rig.redis_url, model=config.echo.name) as client:

        async def streamed(_: int) -> None:
            async for _ in client.astream_chat(chat, max_new_tokens=config.stream_tokens):
                pass

        async def unstreamed(_: int) -> None:
            await client.achat(chat, max_new_tokens=config.stream_tokens)

        # A warm-up of each kind first (the worker's first jobs pay for imports and first calls), then the
        # two kinds in alternating rounds, so that neither gets the quieter part of the run.
        costs = {"streamed": [0.0, 0], "unstreamed": [0.0, 0]}
        for counted in (False, True, True):
            for name, one_job in (("streamed", streamed), ("unstreamed", unstreamed)):
                jobs = jobs_per_round if counted else STREAMS_AT_ONCE
                steps = progress.add_task(f"streaming: {'' if counted else 'warm-up, '}{jobs} {name} jobs", total=jobs)
                cpu_before, writes_before = cpu_s(worker.pid), await _script_calls(redis)
                await jobs_per_s(one_job, jobs, STREAMS_AT_ONCE, progress, steps)
                if counted:
                    costs[name][0] += cpu_s(worker.pid) - cpu_before
                    costs[name][1] += await _script_calls(redis) - writes_before
    await redis.aclose()
    streamed_us = costs["streamed"][0] / num_tokens * 1e6
    unstreamed_us = costs["unstreamed"][0] / num_tokens * 1e6
    # The two kinds differ only in the publishing writes (each one script call, for every job with news).
    calls_per_token = (costs["streamed"][1] - costs["unstreamed"][1]) / num_tokens
    return [
        Row(
            "streaming",
            f"worker CPU per token, {config.stream_tokens}-token answers",
            "µs",
            streamed_us,
            unstreamed_us,
            "unstreamed",
            Target("value", "<=", 30),
        ),
        Row("streaming", "Redis script calls per streamed token", "calls", calls_per_token),
    ]


async def _latency_rows(rig: Rig, config: BenchConfig, progress: Progress) -> list[Row]:
    rig.worker(config.echo_paced)
    chat = [{"role": "user", "content": " ".join(f"w{i}" for i in range(LATENCY_TOKENS))}]
    latencies_ms: list[float] = []
    async with AsyncInferQClient(rig.redis_url, model=config.echo_paced.name) as client:

        async def timed(_: int) -> None:
            handle = await client.submit_chat(chat, max_new_tokens=LATENCY_TOKENS)
            first_at = None
            async for _ in handle.stream():
                first_at = first_at or time.time()
            record = await handle.record()
            latencies_ms.append((first_at - record.timings.first_token_at) * 1000)

        steps = progress.add_task(
            f"streaming: first token to client, {STREAMS_AT_ONCE} streams at {config.stream_rate:g} tok/s",
            total=config.stream_jobs,
        )
        async with _pinging(rig.redis_url) as ping_ms:
            await jobs_per_s(timed, config.stream_jobs, STREAMS_AT_ONCE, progress, steps)
    rows = []
    for q in (50, 99):
        rows.append(
            Row(
                "streaming",
                f"first token, engine to client, p{q}",
                "ms",
                percentile(latencies_ms, q),
                percentile(ping_ms, q),
                "bare PUBLISH",
            )
        )
    return rows


@contextlib.asynccontextmanager
async def _pinging(redis_url: str):
    """Times a bare PUBLISH to a subscriber in this process every PING_EVERY_S while the block runs."""
    publisher, subscriber = Redis.from_url(redis_url), Redis.from_url(redis_url)
    pubsub = subscriber.pubsub()
    await pubsub.subscribe(PING_CHANNEL)
    await pubsub.get_message(timeout=1.0)  # the subscribe confirmation
    ping_ms: list[float] = []
    # A flag, not task.cancel(): redis-py's get_message can swallow a cancellation and loop on.
    stopping = asyncio.Event()

    async def ping_until_stopped() -> None:
        while not stopping.is_set():
            started = time.perf_counter()
            await publisher.publish(PING_CHANNEL, b"x")
            while await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0) is None:
                pass
            ping_ms.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(PING_EVERY_S)

    pinger = asyncio.create_task(ping_until_stopped())
    try:
        yield ping_ms
    finally:
        stopping.set()
        await pinger
        await pubsub.aclose()
        await subscriber.aclose()
        await publisher.aclose()


async def _script_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval"))
