"""Flower, started as a user would, sees the fleet, and finds a batch's lines by their tags."""

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from api_client import AsyncInferQClient
from api_client.jobs import idempotent_job_id
from batch import BatchLine, BatchProgress, run_batch
from batch.runner import line_key
from harness.embedded_redis import free_port
from tests.waiting import until
from worker.orphan_guard import die_with_parent

BOUND_S = 180  # a bound for failure only


@pytest.fixture(scope="module")
def flower(redis_url):
    """Flower's base URL; one Flower for the module, its API open (the tests read it as a script would)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks.monitor", "flower", f"--port={port}", "--address=127.0.0.1"],
        env={**os.environ, "INFERQ_REDIS_URL": redis_url, "FLOWER_UNAUTHENTICATED_API": "true"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=30)


def _read(url: str):
    """Flower's answer, or None while it is not up yet."""
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return json.load(reply)
    except OSError:
        return None


def test_flower_lists_the_live_workers(flower, tiny_worker, tiny_scorer_worker):
    deadline = time.monotonic() + BOUND_S
    workers: dict = {}
    while time.monotonic() < deadline and not {tiny_worker.hostname, tiny_scorer_worker.hostname} <= set(workers):
        workers = _read(f"{flower}/api/workers?refresh=1") or {}
        time.sleep(0.5)
    assert {tiny_worker.hostname, tiny_scorer_worker.hostname} <= set(workers)
    queues = {queue["name"] for queue in workers[tiny_worker.hostname]["active_queues"]}
    assert queues == {"inferq.model.tiny"}


async def test_flower_finds_a_batchs_lines_by_its_tag_and_nothing_else(flower, client_settings, echo_worker):
    lines = [
        BatchLine(custom_id=f"row {i}", index=i, url="/v1/chat/completions", model="echo",
                  messages=[{"role": "user", "content": f"secret prompt {i}"}])
        for i in range(5)
    ]  # fmt: skip
    async with AsyncInferQClient(settings=client_settings) as client:
        probes = set()

        async def flower_sees_a_probe() -> bool:
            """Flower sees only the events sent while it listens: a tagged chat, until one shows there."""
            probe = await client.submit_chat([{"role": "user", "content": "probe"}], "echo", tags={"probe": "yes"})
            await probe.result()
            probes.add(probe.id)
            return bool(await _search(flower, "kwargs:probe=yes"))

        async def flower_answers() -> bool:
            return await asyncio.to_thread(_read, f"{flower}/api/tasks") is not None

        await until(flower_answers, "Flower never answered", BOUND_S)
        await until(flower_sees_a_probe, "Flower never showed a job's events", BOUND_S)
        await run_batch(
            client, lines, batch_id="flowerbatch", progress=BatchProgress(total=5), on_result=lambda *_: None
        )
        job_ids = {idempotent_job_id(client.owner, line_key("flowerbatch", line.custom_id)) for line in lines}

    async def the_batch_done() -> bool:
        found = await _search(flower, "kwargs:batch=flowerbatch")
        return set(found) == job_ids and {task["state"] for task in found.values()} == {"SUCCESS"}

    await until(the_batch_done, "Flower never listed the batch's five lines, succeeded", BOUND_S)
    tasks = await _search(flower, "kwargs:batch=flowerbatch")
    assert not probes & set(tasks)
    assert {task["kwargs"] for task in tasks.values()} == {
        str({"batch": "flowerbatch", "line": f"row {i}"}) for i in range(5)
    }
    assert not any("secret prompt" in json.dumps(task) for task in tasks.values())  # tags, never the prompt


async def _search(flower: str, query: str) -> dict:
    """Flower's tasks matching a query of its search syntax (its UI's search box takes the same)."""
    return await asyncio.to_thread(_read, f"{flower}/api/tasks?{urllib.parse.urlencode({'search': query})}") or {}
