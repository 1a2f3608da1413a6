"""The shared subscriber: many channels on one connection, and nothing lost across a reconnect."""

import asyncio

import pytest

from tasks import hub as hub_module
from tasks.config import QueueSettings
from tasks.hub import RESYNC, Follower
from tasks.schemas import TokenEvent
from tasks.store import JobStore, decode_event
from tests.silencing_proxy import SilencingProxy
from tests.waiting import until


def _token(seq):
    return TokenEvent(seq=seq, attempt=1, index=0, text=str(seq), num_tokens=1)


async def test_one_connection_carries_many_jobs(store):
    followers = [await store.follow_events(f"job-{i}") for i in range(200)]
    for i in range(200):
        await store.append(f"job-{i}", [_token(1)])
    for follower in followers:
        assert decode_event(await follower.get(timeout=None)).seq == 1
    assert store.hub.num_channels == 200
    for follower in followers:
        await store.unfollow(follower)
    assert store.hub.num_channels == 0


async def test_two_followers_of_one_job_both_hear_it(store):
    first, second = await store.follow_events("shared"), await store.follow_events("shared")
    await store.append("shared", [_token(1)])
    assert await first.get(timeout=None) == await second.get(timeout=None)
    await store.unfollow(first)
    await store.append("shared", [_token(2)])
    assert decode_event(await second.get(timeout=None)).seq == 2


async def test_after_a_reconnect_every_follower_is_told_to_resync(store, redis_url):
    import redis

    follower = await store.follow_events("dropped")
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    ours = [client["id"] for client in admin.client_list(_type="pubsub") if client["db"] == "1"]  # not the workers'
    assert len(ours) == 1
    admin.client_kill_filter(_id=ours[0])  # the server drops the subscriber
    assert await follower.get(timeout=None) is RESYNC
    assert store.hub.reconnects == 1
    await store.append("dropped", [_token(1)])  # and the channel is live again
    assert decode_event(await follower.get(timeout=None)).seq == 1


async def test_a_quiet_channel_times_out(store):
    follower = await store.follow_events("quiet")
    assert await asyncio.wait_for(follower.get(timeout=0.05), 10) is None


class _CountedGets(asyncio.Queue):
    """An asyncio.Queue that counts the gets parked on it."""

    def __init__(self) -> None:
        super().__init__()
        self.getting = 0

    async def get(self):
        self.getting += 1
        try:
            return await super().get()
        finally:
            self.getting -= 1


async def test_a_follower_cancelled_as_its_message_comes_stops_and_the_message_stays_for_the_next_read():
    # Python 3.11's asyncio.wait_for hands back what it waited for when a cancel comes in the same turn of the
    # loop: a cancelled wait for a job (a client's timeout, a caller gone) went on as if nothing had happened.
    queue = _CountedGets()
    follower = Follower("raced", queue)
    waiting = asyncio.create_task(follower.get(timeout=60))
    await until(lambda: queue.getting == 1, "the follower never waited")
    queue.put_nowait("the message")  # what the hub's reader does with a message for the channel ...
    waiting.cancel()  # ... as the waiter is cancelled, in the same turn of the loop
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await follower.get(timeout=60) == "the message"


async def test_a_follow_cancelled_before_redis_confirmed_it_leaves_nothing_subscribed(store):
    following = asyncio.ensure_future(store.follow_events("abandoned"))
    await asyncio.sleep(0)  # it has asked to subscribe; Redis's confirmation is a round trip away
    assert store.hub.num_channels == 1
    following.cancel()  # a timeout, or a client gone, while it waits
    await asyncio.gather(following, return_exceptions=True)
    assert store.hub.num_channels == 0
    held = await store.follow_events("abandoned")  # and the channel can be followed again
    await store.append("abandoned", [_token(1)])
    assert decode_event(await held.get(timeout=None)).seq == 1


async def test_a_subscriber_gone_silent_is_noticed_and_every_follower_resyncs(store, isolated_url, monkeypatch):
    monkeypatch.setattr(hub_module, "POLL_S", 0.05)
    monkeypatch.setattr(hub_module, "PING_EVERY_S", 0.2)
    # Long against the pings (a loaded machine answers a PING well within it), short against TCP's 15 minutes.
    monkeypatch.setattr(hub_module, "SILENT_LIMIT_S", 6.0)
    async with SilencingProxy(isolated_url) as proxy:
        proxied = JobStore.open(QueueSettings(redis_url=proxy.url))
        follower = await proxied.follow_events("silenced")
        pongs = proxy.bytes_from_redis
        await until(lambda: proxy.bytes_from_redis > pongs, "the quiet hub never pinged")
        assert proxied.hub.reconnects == 0  # quiet is not dead: its PINGs are answered
        proxy.silence()  # its host vanished: no bytes, no reset
        # the bound only turns a hang into a failure (TCP alone would take about 15 minutes)
        assert await asyncio.wait_for(follower.get(timeout=None), 300) is RESYNC
        assert proxied.hub.reconnects == 1
        try:
            await store.append("silenced", [_token(1)])  # and the channel is live again, on a new connection
            assert decode_event(await asyncio.wait_for(follower.get(timeout=None), 300)).seq == 1
        finally:
            await proxied.aclose()
