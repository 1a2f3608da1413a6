"""The token reader: exactly once, in order, whenever it arrives; a real Redis, a scripted publisher."""

import asyncio

import pytest
from redis.asyncio import Redis

from api_client.stream import job_events
from tasks.config import QueueSettings
from tasks.schemas import JobRecord, RestartEvent, Timings, TokenEvent
from tasks.store import JobStore


@pytest.fixture
async def store(redis_url):
    redis = Redis.from_url(redis_url, decode_responses=True)
    yield JobStore(redis, QueueSettings(redis_url=redis_url))
    await redis.aclose()


def _token(seq, text, attempt=1):
    return TokenEvent(seq=seq, attempt=attempt, index=0, text=text, num_tokens=1)


def _done(job_id):
    return JobRecord(job_id=job_id, kind="chat", status="succeeded", model="m", timings=Timings(queued_at=0))


async def _read_all(store, job_id):
    return [event async for event in job_events(store, job_id)]


async def test_a_reader_during_publishing_gets_everything_once(store):
    reader = asyncio.create_task(_read_all(store, "live"))
    for seq in range(1, 40):
        await store.append("live", _token(seq, f"t{seq}"))
        if seq == 20:
            await asyncio.sleep(0.05)  # the reader subscribes somewhere in the middle
    await store.finish(_done("live"), next_seq=40)
    events = await reader
    assert [event.seq for event in events] == list(range(1, 41))


async def test_a_pubsub_message_lost_in_transit_is_recovered_from_the_log(store):
    reader = asyncio.create_task(_read_all(store, "gappy"))
    await asyncio.sleep(0.1)
    await store.append("gappy", _token(1, "a"))
    # seq 2 reaches the log but not the channel (as if published during a reconnect)
    await store.redis.xadd("inferq:events:gappy", {"e": _token(2, "b").model_dump_json()}, id="0-2")
    await store.append("gappy", _token(3, "c"))
    await store.finish(_done("gappy"), next_seq=4)
    assert [getattr(event, "text", "final") for event in await reader] == ["a", "b", "c", "final"]


async def test_a_late_reader_starts_at_the_latest_attempt(store):
    await store.append("retried", _token(1, "old"))
    await store.append("retried", RestartEvent(seq=2, attempt=2))
    await store.append("retried", _token(3, "new", attempt=2))
    await store.finish(_done("retried"), next_seq=4)
    events = await _read_all(store, "retried")
    assert [event.type for event in events] == ["restart", "token", "final"]
    assert events[1].text == "new"


async def test_a_finished_job_whose_log_expired_still_yields_its_record(store):
    await store.finish(_done("expired-log"))
    await store.redis.delete("inferq:events:expired-log")
    [event] = await _read_all(store, "expired-log")
    assert event.type == "final" and event.record.job_id == "expired-log"
