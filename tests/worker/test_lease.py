"""The job lease (worker/lease.py) on a real Redis: one holder, a waiting second delivery, fencing."""

import asyncio

import pytest

from tasks import names
from tasks.schemas import JobRecord, JobStatus, Timings
from tasks.store import Admission
from worker.lease import JobLease

# The broker plays no part in what is tested here: the RabbitMQ pass leaves it out.
pytestmark = pytest.mark.any_broker


async def test_a_second_delivery_waits_then_lets_go_once_the_job_has_a_record(store):
    first, second = JobLease(store, "leased", ttl_s=30), JobLease(store, "leased", ttl_s=30)
    assert (await first.acquire()).outcome == "admitted"
    waiting = asyncio.create_task(second.acquire())
    await asyncio.sleep(0)
    assert not waiting.done()  # it cannot take a held lease
    record = JobRecord(
        job_id="leased", kind="chat", status=JobStatus.SUCCEEDED, model="m", timings=Timings(queued_at=0)
    )
    first.releasing = True
    assert await store.finish(record, lease_token=first.token)  # which lets the lease go
    first.released_by_record = True
    await first.release()
    assert (await waiting).outcome == "recorded"


async def test_a_second_delivery_takes_over_when_the_first_holder_is_gone(store):
    first, second = JobLease(store, "orphaned", ttl_s=30), JobLease(store, "orphaned", ttl_s=30)
    assert (await first.acquire()).outcome == "admitted"
    waiting = asyncio.create_task(second.acquire())
    await first.release()  # as if its lease had lapsed with its worker
    assert await waiting == Admission("admitted", attempt=2)
    await second.release()


async def test_a_lease_taken_away_is_noticed_and_stops_the_copy(store, isolated_redis):
    lease = JobLease(store, "stolen", ttl_s=0.3)
    stopped = asyncio.Event()

    async def stop():
        stopped.set()

    lease.on_lost = stop
    assert (await lease.acquire()).outcome == "admitted"
    # Another worker's delivery holds it now (the first stalled past its lifetime, say).
    isolated_redis.set(names.lease_key("stolen"), "someone-else")
    await asyncio.wait_for(stopped.wait(), 30)
    assert lease.lost.is_set()
    await lease.release()  # releases nothing that is not its own
    assert await store.is_running("stolen")
