"""How many jobs wait for a model, read from whichever broker holds the queue.

- Redis (and Redis behind Sentinel): kombu keeps a model's queue as one list per priority; their lengths
  add up, and each list's tail is its oldest message, which carries the producer's `queued_at`.
- RabbitMQ: a passive declare answers with the messages ready in the queue (the unacked ones are running).
  RabbitMQ does not say how old the oldest is, so `oldest_queued_at` stays None, and the models with jobs
  waiting are not listed (that needs the management API): only models some worker serves are shown.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading

from kombu import Connection
from redis.asyncio import Redis

from tasks import names
from tasks.config import QueueSettings
from tasks.schemas import QueueInfo


class RedisQueues:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def info(self, model: str) -> QueueInfo:
        """How many jobs wait for `model`, and when the oldest was queued (the tail of each list)."""
        lists = names.queue_lists(model)
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in lists:
                pipe.llen(key)
                pipe.lindex(key, -1)  # kombu pushes on the left and pops on the right
            replies = await pipe.execute()
        depth = sum(replies[0::2])
        queued_at = [stamp for stamp in map(_queued_at, replies[1::2]) if stamp is not None]
        return QueueInfo(model=model, depth=depth, oldest_queued_at=min(queued_at, default=None))

    async def models(self) -> set[str]:
        """Models with a queue list in Redis (kombu deletes an empty list), served or not."""
        found = set()
        async for key in self._redis.scan_iter(match=f"{names.QUEUE_PREFIX}*", count=1000):
            found.add(names.model_of_queue_list(key))
        return found

    async def aclose(self) -> None:
        """The connections are the store's."""


class AmqpQueues:
    """One AMQP connection of its own (kombu's is synchronous: calls run on a thread, one at a time)."""

    def __init__(self, settings: QueueSettings) -> None:
        self._connection = Connection(settings.broker, connect_timeout=10)
        self._lock = threading.Lock()

    async def info(self, model: str) -> QueueInfo:
        return QueueInfo(model=model, depth=await asyncio.to_thread(self._ready, names.queue_for_model(model)))

    async def models(self) -> set[str]:
        return set()

    async def aclose(self) -> None:
        await asyncio.to_thread(self._connection.release)

    def _ready(self, queue: str) -> int:
        with self._lock:
            channel = self._connection.default_channel
            try:
                return channel.queue_declare(queue=queue, passive=True).message_count
            except self._connection.channel_errors:  # 404: nobody declared it yet, so nothing waits in it
                self._connection.close()  # the broker closed the channel; the next call opens another
                return 0


def _queued_at(raw_message: str | None) -> float | None:
    """The producer's `queued_at` from a kombu message holding an inferq job; None for anything else."""
    if raw_message is None:
        return None
    try:
        envelope = json.loads(raw_message)
        body = envelope["body"]
        if envelope["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return float(args[0]["queued_at"])
    except (ValueError, TypeError, KeyError, IndexError):
        return None
