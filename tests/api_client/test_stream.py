"""The token reader: exactly once, in order, whenever it arrives; a real Redis, a scripted publisher."""

import asyncio

import pytest

from api_client.stream import job_events
from tasks import names
from tasks.schemas import JobRecord, JobStatus, RestartEvent, Timings, TokenEvent

# The broker plays no part in what is tested here: the RabbitMQ pass leaves it out.
pytestmark = pytest.mark.any_broker


def _token(seq, text, attempt=1):
    return TokenEvent(seq=seq, attempt=attempt, index=0, text=text, num_tokens=1)


def _done(job_id):
    return JobRecord(job_id=job_id, kind="chat", status=JobStatus.SUCCEEDED, model="m", timings=Timings(queued_at=0))


async def _read_all(store, job_id):
    return [event async for event in job_events(store, job_id)]


async def _subscribed(store):
    while store.hub.num_channels == 0:
        await asyncio.sleep(0)


async def test_a_reader_arriving_during_publishing_gets_everything_once(store):
    await store.append("live", [_token(seq, f"t{seq}") for seq in range(1, 21)])
    reader = asyncio.create_task(_read_all(store, "live"))
    await _subscribed(store)  # whether it reads the log before or after what follows, nothing doubles
    for seq in range(21, 40):
        await store.append("live", [_token(seq, f"t{seq}")])
    await store.finish(_done("live"))
    assert [event.seq for event in await reader] == list(range(1, 41))


async def test_a_pubsub_message_lost_in_transit_is_recovered_from_the_log(store, isolated_redis):
    reader = asyncio.create_task(_read_all(store, "gappy"))
    await _subscribed(store)
    await store.append("gappy", [_token(1, "a")])
    # seq 2 reaches the log but not the channel (as if published while the subscriber reconnected)
    isolated_redis.xadd(names.events_key("gappy"), {"e": _token(2, "b").model_dump_json()}, id="0-2")
    await store.append("gappy", [_token(3, "c")])
    await store.finish(_done("gappy"))
    assert [getattr(event, "text", "final") for event in await reader] == ["a", "b", "c", "final"]


async def test_a_late_reader_starts_at_the_latest_attempt(store):
    await store.append("retried", [_token(1, "old"), RestartEvent(seq=2, attempt=2), _token(3, "new", attempt=2)])
    await store.finish(_done("retried"))
    events = await _read_all(store, "retried")
    assert [event.type for event in events] == ["restart", "token", "final"]
    assert events[1].text == "new"


async def test_a_finished_job_whose_log_expired_still_yields_its_record(store, isolated_redis):
    await store.finish(_done("expired-log"))
    isolated_redis.delete(names.events_key("expired-log"))
    [event] = await _read_all(store, "expired-log")
    assert event.type == "final" and event.record.job_id == "expired-log"


async def test_readers_leave_no_subscription_behind(store):
    await store.finish(_done("left"))
    await _read_all(store, "left")
    assert store.hub.num_channels == 0
