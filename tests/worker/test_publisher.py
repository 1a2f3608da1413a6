"""A job's publisher (worker/publisher.py): deltas in order, batched behind one flusher, fenced by the lease."""

import pytest

from engines.schemas import Delta
from tasks import names
from tasks.errors import LeaseLost
from tasks.schemas import JobRecord, JobStatus, RestartEvent, Timings
from tasks.store import Admission
from worker.lease import JobLease
from worker.publisher import JobPublisher

# The broker plays no part in what is tested here: the RabbitMQ pass leaves it out.
pytestmark = pytest.mark.any_broker


def _record(job_id):
    return JobRecord(job_id=job_id, kind="chat", status=JobStatus.SUCCEEDED, model="m", timings=Timings(queued_at=0))


async def test_pushed_deltas_land_in_order_before_the_record(store):
    lease = JobLease(store, "published", ttl_s=30)
    admission = await lease.acquire()
    publisher = await JobPublisher.open(store, lease, admission, outage_s=5)
    for i in range(100):  # pushed without waiting: they gather while a write is in flight
        publisher.push(Delta(0, f"t{i}", (i,)))
    assert await publisher.finish(_record("published"))
    events = await store.events_after("published", 0)
    assert [event.seq for event in events] == list(range(1, 102))
    assert [event.text for event in events[:-1]] == [f"t{i}" for i in range(100)] and events[-1].type == "final"
    await lease.release()


async def test_a_later_attempt_voids_what_earlier_ones_streamed(store):
    lease = JobLease(store, "again", ttl_s=30)
    first = await JobPublisher.open(store, lease, await lease.acquire(), outage_s=5)
    first.push(Delta(0, "void", (1,)))
    await first.drain()
    second = await JobPublisher.open(store, lease, Admission("admitted", attempt=2, last_seq=1), outage_s=5)
    second.push(Delta(0, "kept", (2,)))
    await second.drain()
    events = await store.events_after("again", 0)
    assert [type(event) for event in events][1] is RestartEvent and events[2].text == "kept"
    await lease.release()


async def test_a_copy_that_lost_its_lease_publishes_nothing_more(store, isolated_redis):
    lease = JobLease(store, "fenced", ttl_s=30)
    admission = await lease.acquire()
    publisher = await JobPublisher.open(store, lease, admission, outage_s=5)
    publisher.push(Delta(0, "mine", (1,)))
    await publisher.drain()
    isolated_redis.set(names.lease_key("fenced"), "another-worker")
    publisher.push(Delta(0, "stale", (2,)))
    with pytest.raises(LeaseLost):
        await publisher.drain()
    with pytest.raises(LeaseLost):
        publisher.push(Delta(0, "staler", (3,)))
    with pytest.raises(LeaseLost):
        await publisher.finish(_record("fenced"))
    assert [event.text for event in await store.events_after("fenced", 0)] == ["mine"]
    assert await store.record("fenced") is None
