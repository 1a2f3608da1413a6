"""A job's publisher and the worker's one event writer (worker/publisher.py): deltas in order, gathered while a
write is in flight, every job's in one write, each fenced by its own lease."""

import pytest

from engines.pieces import CallArguments, CallStart
from engines.schemas import Delta
from tasks import names
from tasks.errors import LeaseLost
from tasks.schemas import JobRecord, JobStatus, RestartEvent, Timings, ToolCallDelta
from tasks.store import Admission
from worker import publisher as publisher_module
from worker.lease import JobLease
from worker.publisher import EventWriter, JobPublisher

# The broker plays no part in what is tested here: the RabbitMQ pass leaves it out.
pytestmark = pytest.mark.any_broker


def _record(job_id):
    return JobRecord(job_id=job_id, kind="chat", status=JobStatus.SUCCEEDED, model="m", timings=Timings(queued_at=0))


async def _open(store, lease, admission=None):
    admission = admission or await lease.acquire()
    return await JobPublisher.open(store, EventWriter(store, outage_s=5), lease, admission, outage_s=5)


async def test_pushed_deltas_land_in_order_before_the_record(store):
    lease = JobLease(store, "published", ttl_s=30)
    publisher = await _open(store, lease)
    for i in range(100):  # pushed without waiting: they gather while a write is in flight
        publisher.push(Delta(0, f"t{i}", (i,)))
    assert await publisher.finish(_record("published"))
    events = await store.events_after("published", 0)
    assert [event.seq for event in events] == list(range(1, 102))
    assert [event.text for event in events[:-1]] == [f"t{i}" for i in range(100)] and events[-1].type == "final"
    await lease.release()


async def _publishers(store, job_ids):
    """Publishers of these jobs on one writer, each under its lease, and the writes' job ids as they are made."""
    writer = EventWriter(store, outage_s=5)
    leases = [JobLease(store, job_id, ttl_s=30) for job_id in job_ids]
    publishers = [await JobPublisher.open(store, writer, lease, await lease.acquire(), 5) for lease in leases]
    writes = []
    append_many = store.append_many

    async def counted(job_writes):
        writes.append([write.job_id for write in job_writes])
        return await append_many(job_writes)

    store.append_many = counted
    return publishers, leases, writes


async def test_every_jobs_events_go_out_together_each_under_its_own_lease(store, isolated_redis):
    publishers, leases, writes = await _publishers(store, [f"together-{i}" for i in range(3)])
    isolated_redis.set(names.lease_key("together-1"), "another-worker")
    for i, publisher in enumerate(publishers):
        publisher.push(Delta(0, f"job {i}", (i,)))
    await publishers[0].drain()
    await publishers[2].drain()
    with pytest.raises(LeaseLost):
        await publishers[1].drain()
    assert writes == [["together-0", "together-1", "together-2"]]  # one round trip for the three jobs
    texts = [[event.text for event in await store.events_after(f"together-{i}", 0)] for i in range(3)]
    assert texts == [["job 0"], [], ["job 2"]]
    for lease in leases:
        await lease.release()


async def test_a_crowd_of_jobs_is_written_a_bounded_number_at_a_time(store, monkeypatch):
    monkeypatch.setattr(publisher_module, "MAX_JOBS_PER_WRITE", 2)
    publishers, leases, writes = await _publishers(store, [f"crowd-{i}" for i in range(3)])
    for i, publisher in enumerate(publishers):
        publisher.push(Delta(0, f"job {i}", (i,)))
    await publishers[2].drain()  # the last one waits for the round after the first
    assert writes == [["crowd-0", "crowd-1"], ["crowd-2"]]
    for i in range(3):
        assert [event.text for event in await store.events_after(f"crowd-{i}", 0)] == [f"job {i}"]
    for lease in leases:
        await lease.release()


async def test_every_delta_is_an_event_of_its_own_plain_or_not(store):
    lease = JobLease(store, "deltas", ttl_s=30)
    publisher = await _open(store, lease)
    publisher.push(Delta(0, 'a "quoted"\nline, é', (1,)))  # plain: written from the template
    publisher.push(Delta(1, "b", (2,)))
    publisher.push(Delta(1, "", (3,)), [CallStart(0, "call-1", "get_time"), CallArguments(0, '{"tz": "UTC"}')], None)
    publisher.push(Delta(0, "c", (4,), "stop"))
    await publisher.drain()
    events = await store.events_after("deltas", 0)
    assert [(event.index, event.text, event.num_tokens) for event in events] == [
        (0, 'a "quoted"\nline, é', 1),
        (1, "b", 1),
        (1, "", 1),
        (0, "c", 1),
    ]
    assert events[2].tool_calls == [ToolCallDelta(index=0, id="call-1", name="get_time", arguments='{"tz": "UTC"}')]
    assert [event.finish_reason for event in events] == [None, None, None, "stop"]
    await lease.release()


async def test_a_later_attempt_voids_what_earlier_ones_streamed(store):
    lease = JobLease(store, "again", ttl_s=30)
    first = await _open(store, lease)
    first.push(Delta(0, "void", (1,)))
    await first.drain()
    second = await _open(store, lease, Admission("admitted", attempt=2, last_seq=1))
    second.push(Delta(0, "kept", (2,)))
    await second.drain()
    events = await store.events_after("again", 0)
    assert [type(event) for event in events][1] is RestartEvent and events[2].text == "kept"
    await lease.release()


async def test_an_attempt_after_the_earlier_ones_log_expired_still_voids_what_they_streamed(store, isolated_redis):
    # Numbered from 1 again, with no restart, its events were taken by a reader of the first attempt as that
    # attempt's own continued (those at or below what it had, dropped as seen).
    lease = JobLease(store, "outlived", ttl_s=30)
    first = await _open(store, lease)
    for token in ("old", "words"):
        first.push(Delta(0, token, (1,)))
    await first.drain()
    isolated_redis.delete(names.events_key("outlived"))  # the stream TTL passed while the job waited again
    second = await _open(store, lease, Admission("admitted", attempt=2, last_seq=0))
    second.push(Delta(0, "new", (2,)))
    await second.drain()
    restart, token = await store.events_after("outlived", 0)
    assert isinstance(restart, RestartEvent) and restart.attempt == 2 and restart.seq > 2  # past the reader's
    assert token.text == "new" and token.seq == restart.seq + 1
    await lease.release()


async def test_a_copy_that_lost_its_lease_publishes_nothing_more(store, isolated_redis):
    lease = JobLease(store, "fenced", ttl_s=30)
    publisher = await _open(store, lease)
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
