"""The client side of the bare-Celery baseline: no-op round trips from one asyncio client.

Sent the way inferq's client sends (`send_task` on as many threads as it uses), heard the way Celery's
own Redis result consumer hears a result (its PUBLISH), on one pattern subscription for every task.
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor

from redis.asyncio import Redis

from api_client.async_client import SEND_THREADS
from benchmarks.noop_app import NOOP_QUEUE, NOOP_TASK, RESULT_CHANNEL_PREFIX, make_noop_app
from tasks.config import QueueSettings

LISTEN_POLL_S = 0.2  # bounds how long closing takes


class CeleryNoopClient:
    def __init__(self, redis_url: str) -> None:
        self._app = make_noop_app(QueueSettings(redis_url=redis_url), broker_pool_limit=SEND_THREADS)
        self._senders = ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="bench-celery-send")
        self._redis = Redis.from_url(redis_url)
        self._pubsub = self._redis.pubsub()
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._listener: asyncio.Task[None] | None = None
        # A flag, not task.cancel(): redis-py's get_message can swallow a cancellation and loop on.
        self._stopping = asyncio.Event()

    async def __aenter__(self) -> CeleryNoopClient:
        await self._pubsub.psubscribe(f"{RESULT_CHANNEL_PREFIX}*")
        self._listener = asyncio.create_task(self._listen())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._stopping.set()
        await self._listener
        await self._pubsub.aclose()
        await self._redis.aclose()
        self._senders.shutdown(wait=False)
        self._app.close()

    async def round_trip(self) -> None:
        task_id = uuid.uuid4().hex
        done = self._waiting[task_id] = asyncio.get_running_loop().create_future()
        send = self._app.send_task
        await asyncio.get_running_loop().run_in_executor(
            self._senders, lambda: send(NOOP_TASK, task_id=task_id, queue=NOOP_QUEUE)
        )
        await done

    async def _listen(self) -> None:
        while not self._stopping.is_set():
            message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=LISTEN_POLL_S)
            if message is None:
                continue
            task_id = message["channel"].decode().removeprefix(RESULT_CHANNEL_PREFIX)
            done = self._waiting.pop(task_id, None)
            if done is not None and not done.done():
                done.set_result(None)
