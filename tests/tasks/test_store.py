"""The one owner of inferq's Redis keys, on a real Redis (a flushed database per test)."""

import asyncio

import pytest

from tasks.errors import LeaseLost
from tasks.schemas import JobMeta, JobRecord, JobStatus, OwnerQuota, Timings, TokenEvent, WorkerInfo
from tasks.store import Admission, EventWrite


def _record(job_id, status=JobStatus.SUCCEEDED):
    return JobRecord(job_id=job_id, kind="chat", status=status, model="m", timings=Timings(queued_at=0))


def _token(seq, text="t"):
    return TokenEvent(seq=seq, attempt=1, index=0, text=text, num_tokens=1)


async def test_a_job_gets_exactly_one_record(store):
    assert await store.finish(_record("once"))
    assert not await store.finish(_record("once", status=JobStatus.CANCELLED))
    assert (await store.record("once")).status == JobStatus.SUCCEEDED


async def test_events_are_logged_in_sequence(store):
    await store.append("logged", [_token(1, "1"), _token(2, "2"), _token(3, "3")])
    assert [event.text for event in await store.events_after("logged", 1)] == ["2", "3"]


async def test_a_retried_append_writes_nothing_twice(store):
    await store.append("retried", [_token(1), _token(2)])
    await store.append("retried", [_token(2), _token(3)])  # the first write went through, its reply was lost
    assert [event.seq for event in await store.events_after("retried", 0)] == [1, 2, 3]


async def test_one_append_writes_many_jobs_and_refuses_only_those_whose_lease_is_gone(store):
    await store.admit("ours", "mine", ttl_s=30)
    await store.admit("theirs", "someone-else", ttl_s=30)
    writes = [
        EventWrite("ours", [_token(1, "a"), _token(2, "b")], lease_token="mine"),
        EventWrite("theirs", [_token(1, "x")], lease_token="mine"),
        EventWrite("unfenced", [_token(1, "u")]),
    ]
    assert await store.append_many(writes) == ["theirs"]
    texts = [[event.text for event in await store.events_after(job, 0)] for job in ("ours", "theirs", "unfenced")]
    assert texts == [["a", "b"], [], ["u"]]


async def test_finish_appends_the_final_event_after_the_last(store):
    await store.append("ending", [_token(1, "a")])
    await store.finish(_record("ending"))
    events = await store.events_after("ending", 0)
    assert [event.type for event in events] == ["token", "final"] and events[-1].seq == 2
    assert events[-1].record == _record("ending")


async def test_an_admission_takes_the_lease_counts_the_delivery_and_reads_the_mark_and_the_log(store):
    first = await store.admit("admitted", "mine", ttl_s=30)
    assert first == Admission("admitted", attempt=1, cancelled=False, last_seq=0)
    assert (await store.admit("admitted", "theirs", ttl_s=30)).outcome == "held"  # nothing counted
    await store.append("admitted", [_token(1), _token(2)], lease_token="mine")
    await store.request_cancel("admitted")
    await store.release_lease("admitted", "mine")  # as if its worker died and the lease lapsed
    assert await store.admit("admitted", "theirs", ttl_s=30) == Admission("admitted", 2, cancelled=True, last_seq=2)
    assert await store.finish(_record("admitted"), lease_token="theirs")
    assert not await store.is_running("admitted")  # the record's write let the lease go
    assert (await store.admit("admitted", "late", ttl_s=30)).outcome == "recorded"


async def test_an_admission_run_again_by_its_holder_is_the_same_and_a_hand_back_is_no_death(store):
    first = await store.admit("retried", "mine", ttl_s=30)
    assert await store.admit("retried", "mine", ttl_s=30) == first  # a retried call: no wait, no second count
    await store.release_lease("retried", "mine", handed_back=True)  # its worker's shutdown gave it back whole
    second = await store.admit("retried", "next", ttl_s=30)
    assert (second.attempt, second.handed_back) == (2, 1)  # the second delivery, after no death


async def test_writes_under_a_lease_stop_when_the_lease_is_someone_elses(store):
    assert (await store.admit("fenced", "mine", ttl_s=30)).outcome == "admitted"
    await store.append("fenced", [_token(1)], lease_token="mine")
    await store.release_lease("fenced", "mine")
    assert (await store.admit("fenced", "theirs", ttl_s=30)).outcome == "admitted"
    with pytest.raises(LeaseLost):
        await store.append("fenced", [_token(2)], lease_token="mine")
    with pytest.raises(LeaseLost):
        await store.finish(_record("fenced"), lease_token="mine")
    assert len(await store.events_after("fenced", 0)) == 1 and await store.record("fenced") is None
    assert await store.finish(_record("fenced"), lease_token="theirs")
    # the reply was lost and the finish retried: the lease went with the write, the record stands
    assert not await store.finish(_record("fenced"), lease_token="theirs")


async def test_a_lease_renews_only_for_its_holder_and_lapses(store):
    # Long leases while ownership is checked (a loaded machine may stall between two calls), then a short one
    # renewed by its holder, to watch it lapse.
    assert (await store.admit("leased", "mine", ttl_s=60)).outcome == "admitted"
    assert await store.renew_lease("leased", "mine", ttl_s=60)
    assert not await store.renew_lease("leased", "theirs", ttl_s=60)
    assert await store.is_running("leased")
    assert await store.renew_lease("leased", "mine", ttl_s=0.2)
    while await store.is_running("leased"):  # lapses by itself: Redis expires it
        await asyncio.sleep(0.05)
    assert not await store.renew_lease("leased", "mine", ttl_s=0.2)


async def test_cancel_marks_are_seen_in_bulk(store):
    await store.request_cancel("calm")
    assert await store.cancels_requested(["calm", "other"]) == {"calm"}


async def test_workers_announce_and_retire(store):
    info = WorkerInfo(
        hostname="w@h", model="m", engine="echo", model_path="echo", can_generate=True,
        host="h", pid=1, started_at=0, concurrency=1,
    )  # fmt: skip
    await store.announce(info, ttl_s=30)
    assert await store.workers() == [info] and await store.worker("w@h") == info
    await store.retire("w@h")
    assert await store.workers() == []


async def test_an_owners_quota_counts_its_jobs_in_flight_and_sweeps_out_ended_ones(store):
    quota = OwnerQuota(max_jobs=2, max_queued=1)
    q0, q1, q2 = [JobMeta(job_id=f"q{i}", kind="chat", model="m", queued_at=i, owner="o") for i in range(3)]
    for meta in (q0, q1, q2):
        await store.save_meta(meta)
    assert await store.admit_owned(q0, quota) == "admitted"
    assert await store.admit_owned(q1, quota) == "queued"  # q0 waits to start: the one queued job allowed
    await store.admit("q0", "token", 30)  # q0 runs now
    assert await store.admit_owned(q1, quota) == "admitted"
    assert await store.admit_owned(q2, quota) == "in_flight"  # q0 running, q1 queued: two in flight
    await store.finish(_record("q0"))  # ended: swept out at the next admission
    assert await store.admit_owned(q2, quota) == "queued"  # q1 still waits
    await store.forget_meta("q1")  # vanished (never queued): swept out too
    assert await store.admit_owned(q2, quota) == "admitted"
    other = JobMeta(job_id="elsewhere", kind="chat", model="m", queued_at=0, owner="someone-else")
    await store.save_meta(other)
    assert await store.admit_owned(other, quota) == "admitted"  # each owner counts its own
