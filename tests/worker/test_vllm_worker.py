"""A real vLLM worker process behind the queue: concurrent streams, and no orphaned EngineCore after a SIGKILL.

One worker for the session (a vLLM start costs a minute on two cores): the gateway's API tests use it first,
and this test kills it last. The clean close of a vLLM engine is checked
where the engine tests close theirs (tests/engines/conftest.py); a worker's SIGTERM path is the same for
every engine (tests/worker/test_app.py).
"""

import asyncio
import time
from pathlib import Path

import pytest

from api_client import AsyncInferQClient
from tasks.schemas import FinalEvent, TokenEvent
from worker.orphan_guard import descendants

# The broker plays no part in what is tested here: the RabbitMQ pass leaves it out.
pytestmark = pytest.mark.any_broker


def _alive(pids) -> set[int]:
    return {pid for pid in pids if Path(f"/proc/{pid}").exists()}


def _wait_gone(pids, timeout_s=120) -> set[int]:
    deadline = time.monotonic() + timeout_s
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _alive(pids)


async def _stream_job(client, i):
    handle = await client.submit_chat(
        [{"role": "user", "content": f"Write a short story about the number {i}."}], max_new_tokens=64, temperature=0
    )
    events = [event async for event in handle.events()]
    return handle, events


async def test_sixteen_concurrent_streams_on_a_vllm_worker_and_no_engine_core_left_after_sigkill(
    vllm_worker, redis_url
):
    worker = vllm_worker
    spawned = descendants(worker.pid)
    assert len(spawned) >= 2  # vLLM's EngineCore (and its model worker), and the orphan guard
    async with AsyncInferQClient(redis_url, model="smollm2-vllm") as client:
        started = time.perf_counter()
        results = await asyncio.gather(*[_stream_job(client, i) for i in range(16)])
        elapsed = time.perf_counter() - started
    total_tokens = 0
    for _, events in results:
        assert [event.seq for event in events] == list(range(1, len(events) + 1))  # every delta, in order
        final = events[-1]
        assert isinstance(final, FinalEvent) and final.record.status == "succeeded"
        assert final.record.engine == "vllm"
        tokens = [event for event in events if isinstance(event, TokenEvent)]
        assert "".join(event.text for event in tokens) == final.record.responses[0].response_text
        total_tokens += final.record.usage.completion_tokens
    rate = total_tokens / elapsed
    print(f"\nvLLM worker, 16 concurrent streams: {total_tokens} tokens in {elapsed:.1f} s = {rate:.1f} tok/s")
    worker.kill()  # SIGKILL: the worker cannot clean up; its orphan guard does
    assert _wait_gone(spawned) == set()  # no EngineCore left behind, holding a GPU's memory
