"""Interactive chats beside a running batch (issue 19): TTFT p50/p99 of one chat at a time on an idle worker,
then the same chats while a batch keeps every one of its rows busy, with a backlog of batch lines queued.

How a chat goes first: a batch never holds a model's last rows (batch/fleet_share.py: an eighth of them, at
least one, stay free), so a chat arriving beside a batch finds a free slot and the engine (continuous
batching on HF and vLLM) admits it at its next step; its lines are at priority 9, below every interactive
priority, so a chat also passes any batch line still queued, and the engine, told each job's priority, makes
the chat's first step its prefill alone (HF; vLLM through engines/vllm_scheduling.py). The step already running
when the chat arrives stops at its next layer on HF (engines/hf/preemption.py); on vLLM the chat waits for it. Idle
and beside samples alternate in rounds, so that load from elsewhere on the machine falls on both alike.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Iterator

from rich.progress import Progress

from api_client import AsyncInferQClient
from batch.fleet_share import FleetShare
from batch.lines import BatchLine
from batch.runner import BatchProgress, run_batch
from benchmarks.config import BenchConfig, EngineSpec
from benchmarks.engine_queue import use_vllm_cpu_env
from benchmarks.overhead import NEW_TOKENS, PROMPTS, _timed
from benchmarks.results import Row, Target, percentile
from benchmarks.rig import Rig

ROUNDS = 2  # idle, beside, idle, beside: each round a half of the samples


async def run(rig: Rig, config: BenchConfig, progress: Progress) -> list[Row]:
    spec = config.batch_engine_spec
    if spec.backend == "vllm":
        use_vllm_cpu_env()
    # Each round starts when the worker's heartbeat shows the batch's rows busy, and ends when it shows them idle:
    # a heartbeat every half second instead of every 5 s, so the rounds do not wait for it (one small write each).
    rig.worker(spec, env={"INFERQ_HEARTBEAT_S": "0.5"})
    messages = [{"role": "user", "content": PROMPTS[spec.backend]}]
    params = {"temperature": 0, "max_new_tokens": NEW_TOKENS}
    idle: list[float] = []
    beside: list[float] = []
    steps = progress.add_task(f"batch: {spec.backend} chats, idle and beside a batch", total=2 * config.batch_samples)
    async with AsyncInferQClient(rig.redis_url, model=spec.name) as client:
        await _timed(client.astream_chat(messages, **params))  # warm-up
        busy = await FleetShare(client).limit(spec.name)  # the rows a batch may hold
        for _ in range(ROUNDS):
            for _ in range(config.batch_samples // ROUNDS):
                idle.append((await _timed(client.astream_chat(messages, **params)))[0])
                progress.advance(steps)
            batch = asyncio.create_task(_endless_batch(client, spec, window=2 * spec.concurrency))
            await _until_busy(client, spec, busy)
            for _ in range(config.batch_samples // ROUNDS):
                beside.append((await _timed(client.astream_chat(messages, **params)))[0])
                progress.advance(steps)
            batch.cancel()
            await asyncio.gather(batch, return_exceptions=True)
            await _until_idle(client, spec)
    rig.stop_worker(spec)
    case = f"{spec.backend}: interactive TTFT beside a batch ({busy} of {spec.concurrency} rows busy)"
    return [
        Row("batch", f"{case} p50", "ms", percentile(beside, 50), percentile(idle, 50), "idle worker",
            Target("ratio", "<=", 1.2)),
        Row("batch", f"{case} p99", "ms", percentile(beside, 99), percentile(idle, 99), "idle worker"),
    ]  # fmt: skip


async def _endless_batch(client: AsyncInferQClient, spec: EngineSpec, window: int) -> None:
    def lines() -> Iterator[BatchLine]:
        for i in itertools.count():
            messages = [{"role": "user", "content": f"{PROMPTS[spec.backend]} ({i})"}]
            options = {"max_new_tokens": 4 * NEW_TOKENS, "temperature": 0}
            yield BatchLine(custom_id=str(i), index=i, url="/v1/chat/completions", model=spec.name,
                            messages=messages, options=options)  # fmt: skip

    # A batch id of its own each round: its lines' job ids are new jobs, not the last round's records.
    await run_batch(client, lines(), batch_id=f"bench-{uuid.uuid4().hex}", progress=BatchProgress(total=0),
                    on_result=lambda *_: None, window=window)  # fmt: skip


async def _until_busy(client: AsyncInferQClient, spec: EngineSpec, busy: int) -> None:
    while not await _running_is(client, spec, lambda running: running >= busy):
        await asyncio.sleep(0.05)


async def _until_idle(client: AsyncInferQClient, spec: EngineSpec) -> None:
    """The batch's jobs still running (a cancelled batch leaves its jobs to finish) end before the next round."""
    while not await _running_is(client, spec, lambda running: running == 0) or await _queued(client, spec):
        await asyncio.sleep(0.05)


async def _running_is(client: AsyncInferQClient, spec: EngineSpec, check) -> bool:
    workers = [info for info in await client.workers() if info.model == spec.name]
    return bool(workers) and check(sum(info.num_running for info in workers))


async def _queued(client: AsyncInferQClient, spec: EngineSpec) -> int:
    return sum(queue.depth for queue in await client.queues() if queue.model == spec.name)
