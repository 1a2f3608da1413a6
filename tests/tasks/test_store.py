"""The Redis protocol both sides share, on a real Redis."""

import pytest
from redis.asyncio import Redis

from tasks.config import QueueSettings
from tasks.schemas import JobRecord, Timings, TokenEvent
from tasks.store import JobStore


@pytest.fixture
async def store(redis_url):
    redis = Redis.from_url(redis_url, decode_responses=True)
    yield JobStore(redis, QueueSettings(redis_url=redis_url, stream_ttl_s=30))
    await redis.aclose()


def _record(job_id, status="succeeded"):
    return JobRecord(job_id=job_id, kind="chat", status=status, model="m", timings=Timings(queued_at=0))


async def test_a_job_gets_exactly_one_record(store):
    assert await store.finish(_record("once"))
    assert not await store.finish(_record("once", status="cancelled"))
    assert (await store.record("once")).status == "succeeded"


async def test_events_are_logged_in_sequence_and_expire(store):
    for seq in (1, 2, 3):
        await store.append("logged", TokenEvent(seq=seq, attempt=1, index=0, text=str(seq), num_tokens=1))
    assert [event.text for event in await store.events_after("logged", 1)] == ["2", "3"]
    assert await store.last_seq("logged") == 3
    assert 0 < await store.redis.ttl("inferq:events:logged") <= 30


async def test_finish_appends_the_final_event_after_the_last(store):
    await store.append("ending", TokenEvent(seq=1, attempt=1, index=0, text="a", num_tokens=1))
    await store.finish(_record("ending"))
    events = await store.events_after("ending", 0)
    assert [event.type for event in events] == ["token", "final"] and events[-1].seq == 2


async def test_cancel_marks_are_seen(store):
    assert not await store.cancel_requested("calm")
    await store.request_cancel("calm")
    assert await store.cancel_requested("calm")
