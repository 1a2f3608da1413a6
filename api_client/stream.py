"""Reads a job's events exactly once and in order, whenever the reader arrives.

Pub/sub drops messages sent before a subscription (or while a connection is down), so the reader
subscribes first (through the process's one shared subscriber), then reads the replay log, then
follows the channel, going back to the log whenever sequence numbers show a gap, the subscriber
reconnected (RESYNC), or the channel has been quiet for a while.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from redis.exceptions import RedisError

from tasks.errors import ClientClosed, JobTimeout
from tasks.hub import CLOSED, RESYNC
from tasks.schemas import FinalEvent, RestartEvent
from tasks.store import Event, JobStore, decode_event

# Quiet periods between looks at the log (and the record, the deadline, the fleet): short at first,
# when a job with no worker should fail fast, then longer, so 10,000 waiting jobs cost little.
QUIET_SCHEDULE_S = (1.0, 1.0, 2.0, 4.0, 8.0)


async def job_events(
    store: JobStore,
    job_id: str,
    on_quiet: Callable[[], Awaitable[None]] | None = None,
    until: float | None = None,
    log_is_whole: bool = False,
) -> AsyncIterator[Event]:
    """`on_quiet` runs each time the channel has been quiet for a while, before the log is read again
    (the handle expires jobs there). `until` (the event loop's clock) bounds the whole read: JobTimeout.
    `log_is_whole`: the log cannot have expired yet (the job was just submitted), so an empty log on the
    first read means no record either, and the record is not read.
    Nothing is held across a `yield` except the subscription, so each step may run in a new task
    (the sync client does that)."""
    loop = asyncio.get_running_loop()
    follower = await _bounded(store.follow_events(job_id), until, job_id)
    try:
        last_seq = 0
        first_read = True
        read_log = True
        quiet_checks = 0
        while True:
            if read_log:
                try:
                    backlog = await _bounded(store.events_after(job_id, last_seq), until, job_id)
                    skip_record = backlog or (first_read and log_is_whole)
                    record = None if skip_record else await _bounded(store.record(job_id), until, job_id)
                except RedisError:
                    backlog, record = [], None  # Redis is away: keep waiting, look again later
                else:
                    if first_read:  # the first read that came back: it may hold earlier attempts
                        backlog = _current_attempt(backlog)
                        first_read = False
                for event in backlog:
                    last_seq = event.seq
                    yield event
                    if isinstance(event, FinalEvent):
                        return
                if record is not None:
                    # The log expired (or was never written) but the job is done.
                    yield FinalEvent(seq=last_seq + 1, record=record)
                    return
                read_log = False
            wait_s = QUIET_SCHEDULE_S[min(quiet_checks, len(QUIET_SCHEDULE_S) - 1)]
            if until is not None:
                if loop.time() >= until:
                    raise JobTimeout(f"no result in time; the job goes on (job {job_id})")
                wait_s = min(wait_s, until - loop.time())
            message = await follower.get(timeout=wait_s)
            if message is None:
                quiet_checks += 1
                if on_quiet is not None and (until is None or loop.time() < until):
                    try:
                        await on_quiet()
                    except RedisError:
                        pass  # the next quiet period tries again
                read_log = True
                continue
            if message is RESYNC:
                read_log = True
                continue
            if message is CLOSED:
                raise ClientClosed(f"the client was closed while it waited; the job goes on (job {job_id})")
            quiet_checks = 0
            event = decode_event(message)
            if event.seq <= last_seq:
                continue
            if event.seq > last_seq + 1:
                read_log = True  # missed something: the log has it, and this one too
                continue
            last_seq = event.seq
            yield event
            if isinstance(event, FinalEvent):
                return
    finally:
        await asyncio.shield(store.unfollow(follower))


async def _bounded(awaitable: Awaitable, until: float | None, job_id: str):
    if until is None:
        return await awaitable
    try:
        async with asyncio.timeout_at(until):
            return await awaitable
    except TimeoutError:
        raise JobTimeout(f"no result in time; the job goes on (job {job_id})") from None


def _current_attempt(backlog: list[Event]) -> list[Event]:
    """A reader arriving late starts at the latest restart: earlier attempts' text is void."""
    restarts = [i for i, event in enumerate(backlog) if isinstance(event, RestartEvent)]
    return backlog[restarts[-1] :] if restarts else backlog
