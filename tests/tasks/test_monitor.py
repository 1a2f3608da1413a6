"""Flower, started as a user would, sees the fleet, finds a batch's lines by their tags, and shows each running
batch's progress in its Batches tab."""

import asyncio
import json
import re
import time
import urllib.parse
import urllib.request
import uuid

import pytest

from api_client import AsyncInferQClient
from api_client.jobs import idempotent_job_id
from batch import BatchLine, BatchProgress, run_batch
from batch.runner import line_key
from harness.flower_process import FlowerProcess
from tasks.config import QueueSettings
from tasks.store import JobStore
from tests.waiting import until

BOUND_S = 180  # a bound for failure only


@pytest.fixture(scope="module")
def flower(redis_url, tmp_path_factory):
    """Flower's base URL; one Flower for the module, its API open (the tests read it as a script would)."""
    log_path = tmp_path_factory.mktemp("flower") / "flower.log"
    process = FlowerProcess(redis_url, log_path, env={"FLOWER_UNAUTHENTICATED_API": "true"}).start()
    yield process.url
    process.stop()


def _read(url: str):
    """Flower's answer, or None while it is not up yet."""
    page = _page(url)
    return None if page is None else json.loads(page)


def _page(url: str) -> str | None:
    try:
        # a refused connection (Flower not up yet) returns at once; the bound is for a loaded machine's slow answer
        with urllib.request.urlopen(url, timeout=120) as reply:
            return reply.read().decode()
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


async def test_flowers_batches_tab_shows_each_running_batchs_progress(flower, redis_url):
    """The batch is written as the gateway's coordinator writes one (tasks/batch_store.py); Flower reads it
    from Redis, on its page and in its API."""
    store = JobStore.open(QueueSettings(redis_url=redis_url))
    batch_id = f"batch_flowertab{uuid.uuid4().hex[:8]}"
    created_at = int(time.time()) - 90
    endpoint = "/v1/chat/completions"
    fields = {"id": batch_id, "status": "in_progress", "endpoint": endpoint, "created_at": str(created_at)}
    progress = {"total": 40, "completed": 10, "failed": 2, "in_flight": 8, "output_tokens": 640, "eta_s": 125.0}
    try:
        await store.batches.add_batch(batch_id, "alice", created_at, fields)
        await store.batches.update_batch(batch_id, {name: str(value) for name, value in progress.items()})

        async def listed() -> dict | None:
            found = (await asyncio.to_thread(_read, f"{flower}/api/batches") or {}).get("batches", [])
            return next((batch for batch in found if batch["id"] == batch_id), None)

        await until(listed, "Flower never listed the batch", BOUND_S)
        shown = await listed()
        assert {name: shown[name] for name in progress} == progress and shown["owner"] == "alice"

        page = await asyncio.to_thread(_page, f"{flower}/batches")
        row = re.search(rf'<tr id="{batch_id}">(.*?)</tr>', page, re.S).group(1)
        cells = dict(re.findall(r'<td class="batch-([a-z-]+)">([^<]*)</td>', row))
        assert cells == {"completed": "10", "failed": "2", "in-flight": "8", "total": "40", "tokens": "640",
                         "eta": "2:05"}  # fmt: skip
        assert 'aria-valuenow="30"' in row  # 12 of 40 lines ended
        # the tab is in Flower's own navigation bar, on its other pages too
        workers_page = await asyncio.to_thread(_page, f"{flower}/workers")
        assert re.search(r'href="/batches"\s*>Batches</a>', workers_page)
    finally:
        await store.batches.retire_batch(batch_id)
        await store.aclose()
