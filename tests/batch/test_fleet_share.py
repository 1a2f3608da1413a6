"""A batch never holds a model's last rows: beside a batch that would fill a worker, a chat still finds a free
slot (real echo worker, held batch lines)."""

import asyncio

import pytest

from api_client import AsyncInferQClient
from api_client.jobs import idempotent_job_id
from batch import BatchLine, BatchProgress, run_batch
from batch.fleet_share import FleetShare
from batch.runner import line_key
from tests.waiting import until


@pytest.fixture(scope="module")
def eight_slot_worker(start_worker):
    worker = start_worker("echo", "share-echo", engine="echo", concurrency=8)
    yield worker
    worker.stop()


def _held(i: int) -> BatchLine:
    messages = [{"role": "user", "content": f"line {i} [hold]"}]
    return BatchLine(custom_id=f"held-{i}", index=i, url="/v1/chat/completions", model="share-echo", messages=messages)


async def test_a_batch_leaves_a_row_free_for_a_chat(client_settings, eight_slot_worker):
    async with AsyncInferQClient(settings=client_settings) as client:
        assert await FleetShare(client).limit("share-echo") == 7  # 8 slots, an eighth kept (at least one)
        assert await FleetShare(client, reserve=0).limit("share-echo") == float("inf")
        progress = BatchProgress(total=12)
        lines = [_held(i) for i in range(12)]
        batch = asyncio.create_task(run_batch(client, lines, batch_id="share", progress=progress,
                                              on_result=lambda *_: None, window=12))  # fmt: skip
        job_ids = [idempotent_job_id(client.owner, line_key("share", line.custom_id)) for line in lines]

        async def seven_running() -> bool:
            return sum([await client.store.is_running(job_id) for job_id in job_ids]) == 7

        await until(seven_running, "the batch never filled its share of the worker")
        assert progress.in_flight == 7 and [await client.find_job(job_id) for job_id in job_ids[7:]] == [None] * 5
        # the free row: a chat beside the batch is answered while every batch line still holds its slot
        [answer] = await client.achat([{"role": "user", "content": "beside the batch"}], "share-echo")
        assert answer.response_text == "beside the batch" and progress.done == 0
        batch.cancel()
        await asyncio.gather(batch, return_exceptions=True)
        for job_id in job_ids[:7]:
            await (await client.find_job(job_id)).cancel()
