"""Reads issued in the same turn of the event loop go to Redis together, in one pipeline.

A client waiting for 10,000 jobs looks at each of them now and then (is its record there, is it still
running); one command per look is a round trip each, and at that scale the process spends its time in
redis-py's per-command overhead. Here the reads of one loop turn share a round trip: a lone read pays
one `call_soon` of latency, a crowd pays a few pipelines. Only idempotent reads go this way: a pipeline
that redis-py retries after a dropped connection runs every command again.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

# A larger batch holds one pooled connection longer while gaining little.
MAX_BATCH = 512


class ReadBatcher:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._pending: list[tuple[str, tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]] = []
        self._flush_scheduled = False
        self._in_flight: set[asyncio.Task[None]] = set()

    async def read(self, command: str, *args: Any, **kwargs: Any) -> Any:
        """`redis.<command>(*args, **kwargs)`, sent with whatever else was read in this turn of the loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((command, args, kwargs, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), MAX_BATCH):
            task = asyncio.ensure_future(self._send(pending[start : start + MAX_BATCH]))
            self._in_flight.add(task)  # a reference, so that the task is not collected mid-flight
            task.add_done_callback(self._in_flight.discard)

    async def _send(self, batch: list[tuple[str, tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]]) -> None:
        try:
            if len(batch) == 1:  # a lone read needs no pipeline
                command, args, kwargs, _ = batch[0]
                outcomes = [await getattr(self._redis, command)(*args, **kwargs)]
            else:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for command, args, kwargs, _ in batch:
                        getattr(pipe, command)(*args, **kwargs)
                    outcomes = await pipe.execute(raise_on_error=False)
        except asyncio.CancelledError:
            for *_, future in batch:
                future.cancel()
            raise
        except Exception as error:  # the round trip failed: every reader hears why, and decides
            outcomes = [error] * len(batch)
        for (*_, future), outcome in zip(batch, outcomes, strict=True):
            _settle(future, outcome)


def _settle(future: asyncio.Future[Any], outcome: Any) -> None:
    if future.done():  # its reader was cancelled meanwhile
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
