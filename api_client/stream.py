"""Reads a job's events exactly once and in order, whenever the reader arrives.

Pub/sub drops messages sent before a subscription (or during a reconnect), so the reader subscribes
first, then reads the replay log, then follows the channel, going back to the log whenever the
sequence numbers show a gap or the channel has been quiet for a while.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from tasks import names
from tasks.schemas import FinalEvent, RestartEvent
from tasks.store import Event, JobStore, decode_event

QUIET_S = 1.0  # after this long without a message, look at the log (and the record) again


async def job_events(
    store: JobStore, job_id: str, on_quiet: Callable[[], Awaitable[None]] | None = None
) -> AsyncIterator[Event]:
    """`on_quiet` runs each time the channel has been quiet for QUIET_S, before the log is read again
    (the handle expires jobs whose deadline passed there)."""
    pubsub = store.redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(names.events_channel(job_id))
    try:
        last_seq = 0
        first_read = True
        read_log = True
        while True:
            if read_log:
                backlog = await store.events_after(job_id, last_seq)
                if first_read:
                    backlog = _current_attempt(backlog)
                    first_read = False
                for event in backlog:
                    last_seq = event.seq
                    yield event
                    if isinstance(event, FinalEvent):
                        return
                if not backlog and (record := await store.record(job_id)) is not None:
                    # The log expired (or was never written) but the job is done.
                    yield FinalEvent(seq=last_seq + 1, record=record)
                    return
                read_log = False
            message = await pubsub.get_message(timeout=QUIET_S)
            if message is None:
                if on_quiet is not None:
                    await on_quiet()
                read_log = True
                continue
            event = decode_event(message["data"])
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
        await pubsub.aclose()


def _current_attempt(backlog: list[Event]) -> list[Event]:
    """A reader arriving late starts at the latest restart: earlier attempts' text is void."""
    restarts = [i for i, event in enumerate(backlog) if isinstance(event, RestartEvent)]
    return backlog[restarts[-1] :] if restarts else backlog
