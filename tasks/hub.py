"""One pub/sub connection per process, multiplexing every channel the process follows.

A client with 10,000 streaming jobs holds one subscriber socket, not 10,000. Pub/sub loses what is
published while a connection is down, so after every reconnect each follower is told to `RESYNC`
(read its job's replay log again); readers also resync when sequence numbers show a gap.

The hub keeps its own registry of channels and does its own reconnecting (redis-py's retries are off
on this connection): after a reconnect it subscribes every registered channel again, and each
channel's followers resync once Redis has confirmed that channel's subscription, so that nothing
published after the confirmation can be missed and nothing before it is left unread.

(Un)subscriptions asked for in the same turn of the event loop go out as one command: a client that
starts following a thousand jobs at once sends one SUBSCRIBE, not a thousand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from tasks.errors import ClientClosed

log = logging.getLogger(__name__)

RESYNC = object()  # put in a follower's queue: messages may have been lost, read the log again
CLOSED = object()  # put in a follower's queue: the hub closed, nothing more will come
POLL_S = 1.0  # the reader's read timeout; it only bounds how long shutdown takes
# Keeps the connection subscribed at all times, so commands sent from a follower's task never make
# redis-py health-check (send and read) a connection the reader task is reading.
ANCHOR_CHANNEL = "inferq:hub-anchor"
SUBSCRIBE_BATCH = 500
# A connection that went silent (its host gone, a partition: no reset ever comes) is noticed by the hub
# itself: redis-py's health check sends a PING but never misses its PONG, and TCP gives up only after
# about 15 minutes. Quiet for PING_EVERY_S, the reader sends a PING of its own; nothing at all heard for
# SILENT_LIMIT_S, its PONG included, and it reconnects (and every follower resyncs).
PING_EVERY_S = 5.0
SILENT_LIMIT_S = 20.0
_PING_PAYLOAD = "inferq-hub"


@dataclass(eq=False)
class Follower:
    channel: str
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)

    async def get(self, timeout: float | None) -> str | object | None:
        """The next message's data, RESYNC, or None when `timeout` passed with nothing."""
        # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancel that comes as a message does,
        # and the cancelled waiter would go on waiting for its job.
        try:
            async with asyncio.timeout(timeout):
                return await self.queue.get()
        except TimeoutError:
            return None


class EventHub:
    def __init__(self, redis: Redis) -> None:
        # A connection of its own, outside the store's pool, without redis-py's retries: the reader
        # notices every disconnect and recovers what pub/sub lost.
        self._redis = redis
        self._followers: dict[str, set[Follower]] = {}
        self._confirmed: dict[str, asyncio.Event] = {}  # channels subscribed, or to be, on this connection
        self._to_subscribe: set[str] = set()
        self._to_unsubscribe: set[str] = set()
        self._flusher: asyncio.Task[None] | None = None
        self._pubsub: PubSub | None = None
        self._lock = asyncio.Lock()  # one writer at a time on the subscriber connection
        self._connected = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._connects = 0
        self._closing = False

    async def follow(self, channel: str) -> Follower:
        """Subscribes (if this process does not follow `channel` yet) and returns once Redis confirmed it."""
        if self._closing:
            raise ClientClosed(f"the client is closed: it follows nothing more ({channel})")
        self._start()
        follower = Follower(channel)
        followers = self._followers.setdefault(channel, set())
        if not followers:
            if channel in self._to_unsubscribe:
                self._to_unsubscribe.discard(channel)  # never left: still subscribed
            elif channel not in self._confirmed:
                self._confirmed[channel] = asyncio.Event()
                self._to_subscribe.add(channel)
                self._schedule_flush()
        followers.add(follower)
        try:
            await self._confirmed[channel].wait()
            if self._closing:
                raise ClientClosed(f"the client was closed while it subscribed ({channel})")
        except BaseException:  # cancelled while Redis had not confirmed (a timeout, a client gone): never left behind
            await self.unfollow(follower)
            raise
        return follower

    async def unfollow(self, follower: Follower) -> None:
        if self._closing:
            return  # the connection goes with every subscription on it
        channel = follower.channel
        followers = self._followers.get(channel)
        if followers is None:
            return
        followers.discard(follower)
        if followers:
            return
        del self._followers[channel]
        if channel in self._to_subscribe:
            self._to_subscribe.discard(channel)  # never sent
            self._confirmed.pop(channel, None)
        else:
            self._to_unsubscribe.add(channel)
            self._schedule_flush()

    @property
    def num_channels(self) -> int:
        return len(self._followers)

    async def aclose(self) -> None:
        # A flag as well as a cancel: redis-py's read can swallow a cancellation that lands inside it.
        self._closing = True
        # Nobody is left waiting: followers are told, and follows waiting for their confirmation wake up.
        for followers in self._followers.values():
            for follower in followers:
                follower.queue.put_nowait(CLOSED)
        for confirmed in self._confirmed.values():
            confirmed.set()
        if self._flusher is not None:
            self._flusher.cancel()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.wait({self._reader}, timeout=2 * POLL_S)
        await self._close_pubsub()
        await self._redis.aclose()

    # -- the reader ------------------------------------------------------------------------

    def _start(self) -> None:
        if self._reader is None:
            self._reader = asyncio.create_task(self._read_forever(), name="inferq-hub")

    async def _read_forever(self) -> None:
        delay_s = 0.05
        while not self._closing:
            try:
                await self._connect()
                delay_s = 0.05
                await self._read_while_alive()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError) as error:
                log.warning("subscriber lost Redis (%s); reconnecting in %.2f s", error, delay_s)
                self._connected.clear()
                await self._close_pubsub()
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 2.0)

    async def _read_while_alive(self) -> None:
        loop = asyncio.get_running_loop()
        heard = pinged = loop.time()
        while not self._closing:
            ping_due_in = PING_EVERY_S - (loop.time() - max(heard, pinged))
            message = await self._pubsub.get_message(timeout=max(0.01, min(POLL_S, ping_due_in)))
            now = loop.time()
            if message is not None:
                heard = now
                self._dispatch(message)  # a PONG is heard, and dispatched to nobody
            elif now - heard >= SILENT_LIMIT_S:
                raise RedisConnectionError(f"nothing from Redis for {now - heard:.0f} s, not even a PONG")
            elif now - max(heard, pinged) >= PING_EVERY_S:
                pinged = now
                # Bounded as a whole, waiting for the lock included: a flush writing into the dead link holds it.
                async with asyncio.timeout(SILENT_LIMIT_S - (now - heard)), self._lock:
                    await self._pubsub.ping(_PING_PAYLOAD)

    async def _connect(self) -> None:
        self._pubsub = self._redis.pubsub()
        async with self._lock:
            # What was pending is moot: this connection subscribes exactly what is followed now.
            self._to_subscribe.clear()
            self._to_unsubscribe.clear()
            for channel in [c for c in self._confirmed if c not in self._followers]:
                del self._confirmed[channel]
            for channel in self._followers:
                self._confirmed.setdefault(channel, asyncio.Event())
            channels = [ANCHOR_CHANNEL, *self._followers]
            for start in range(0, len(channels), SUBSCRIBE_BATCH):
                await self._pubsub.subscribe(*channels[start : start + SUBSCRIBE_BATCH])
        self._connects += 1
        self._connected.set()

    def _schedule_flush(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="inferq-hub-subscriptions")

    async def _flush(self) -> None:
        """Sends the (un)subscriptions asked for since the last flush, each kind as few commands as can be."""
        await asyncio.sleep(0)  # the follows of this turn of the loop join the batch
        await self._connected.wait()
        async with self._lock:
            while self._to_subscribe or self._to_unsubscribe:
                leaving, self._to_unsubscribe = sorted(self._to_unsubscribe), set()
                joining, self._to_subscribe = sorted(self._to_subscribe), set()
                for channel in leaving:
                    self._confirmed.pop(channel, None)
                for command, channels in (("unsubscribe", leaving), ("subscribe", joining)):
                    for start in range(0, len(channels), SUBSCRIBE_BATCH):
                        await self._send(command, channels[start : start + SUBSCRIBE_BATCH])

    @property
    def reconnects(self) -> int:
        return max(0, self._connects - 1)

    def _dispatch(self, message: dict) -> None:
        kind, channel = message["type"], message["channel"]
        if kind == "subscribe":
            confirmed = self._confirmed.get(channel)
            if confirmed is None:
                return
            if confirmed.is_set():
                return
            confirmed.set()
            # Confirmed again after a reconnect: whatever was published meanwhile is only in the logs.
            if self.reconnects:
                for follower in self._followers.get(channel, ()):
                    follower.queue.put_nowait(RESYNC)
        elif kind == "message":
            for follower in self._followers.get(channel, ()):
                follower.queue.put_nowait(message["data"])

    async def _send(self, command: str, channels: list[str]) -> None:
        """Sends (un)subscribe; a failure is left to the reader, which re-subscribes on reconnect."""
        if self._pubsub is None:
            return
        try:
            await getattr(self._pubsub, command)(*channels)
        except (RedisError, OSError) as error:
            log.warning("%s failed (%s); the reader will reconnect", command, error)

    async def _close_pubsub(self) -> None:
        for confirmed in self._confirmed.values():
            confirmed.clear()
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()
            self._pubsub = None
