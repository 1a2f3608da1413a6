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


class _CountedWaits(asyncio.Event):
    """An asyncio.Event that counts the waits parked on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = 0

    async def wait(self) -> bool:
        self.waiting += 1
        try:
            return await super().wait()
        finally:
            self.waiting -= 1


async def test_a_line_waiting_for_a_row_stops_when_cancelled_as_a_row_frees(client_settings, eight_slot_worker):
    # Python 3.11's asyncio.wait_for hands back what it waited for when a cancel comes in the same turn of the
    # loop: a batch cancelled as one of its lines ended went on feeding lines for good.
    async with AsyncInferQClient(settings=client_settings) as client:
        share, freed = FleetShare(client), _CountedWaits()
        share._freed = freed  # the event a waiting line parks on, counted
        for _ in range(7):
            await share.enter("share-echo")  # the batch's share of the worker's 8 rows, taken
        waiting = asyncio.create_task(share.enter("share-echo"))
        await until(lambda: freed.waiting == 1, "the eighth line never waited for a row")
        share.leave("share-echo")  # a row frees ...
        waiting.cancel()  # ... as the batch is cancelled, in the same turn of the loop
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert share._in_flight["share-echo"] == 6  # the cancelled line was not counted in
