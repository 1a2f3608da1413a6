"""Each job's events, in order, on its replay log and live channel, under its lease.

Deltas are pushed without waiting and written by the worker's one `EventWriter`: while a write is in
flight the next deltas of every job gather, and all of them go out in the next. So a busy worker publishes
a step of all its streams in one Redis round trip, not one per job (on the 2-core machine the socket calls
of those round trips were most of what streaming cost the worker), and a job never waits on Redis between
engine steps. Each delta stays an event of its own: a client sees the answer token by token, as the engine
made it, however fast it came; the plain ones, most of a stream, are written without pydantic
(tasks/schemas.py). Each job's write carries its lease's token, so a copy of the job that lost its lease
cannot publish; a Redis that restarts or refuses writes for a while is ridden out with retries
(`redis_outage_s`).
"""

from __future__ import annotations

import asyncio
import functools
import itertools

from engines.pieces import CallArguments, CallStart, ContentPiece, Piece, ReasoningPiece
from engines.schemas import Delta, FinishReason
from tasks.errors import LeaseLost
from tasks.redis_connection import retry_transient
from tasks.schemas import JobRecord, PlainToken, RestartEvent, TokenEvent, ToolCallDelta
from tasks.store import Admission, Event, EventWrite, JobStore
from worker.lease import JobLease

# One script call holds Redis for its whole run: a bound on the jobs in it bounds that (a few ms).
MAX_JOBS_PER_WRITE = 512


class EventWriter:
    """The worker's one writer of streamed events: the jobs with events waiting are written together."""

    def __init__(self, store: JobStore, outage_s: float) -> None:
        self._store = store
        self._outage_s = outage_s
        self._waiting: dict[JobPublisher, None] = {}  # in the order they first pushed
        self._writing: set[JobPublisher] = set()
        self._next: asyncio.Future[None] | None = None  # done when the round that takes `_waiting` ends
        self._current: asyncio.Future[None] | None = None  # done when the round in flight ends
        self._flusher: asyncio.Task[None] | None = None

    def schedule(self, publisher: JobPublisher) -> None:
        self._waiting[publisher] = None
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="inferq-events")

    def forget(self, publisher: JobPublisher) -> None:
        self._waiting.pop(publisher, None)

    async def written(self, publisher: JobPublisher) -> None:
        """Returns once nothing of the publisher's waits or is being written."""
        while True:
            if publisher in self._writing:
                await asyncio.shield(self._current)
            elif publisher in self._waiting:
                await asyncio.shield(self._next)
            else:
                return

    async def aclose(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            publishers = list(itertools.islice(self._waiting, MAX_JOBS_PER_WRITE))
            for publisher in publishers:
                del self._waiting[publisher]
            self._writing, self._current = set(publishers), self._next
            self._next = loop.create_future() if self._waiting else None
            writes = [publisher.take() for publisher in publishers]
            try:
                write_all = functools.partial(self._store.append_many, writes)
                refused = await retry_transient(write_all, self._outage_s, "publishing")
            except Exception as error:  # Redis away for longer than redis_outage_s
                for publisher in publishers:
                    publisher.failed(error)
            else:
                for publisher in publishers:
                    if publisher.job_id in refused:
                        publisher.failed(LeaseLost(f"job {publisher.job_id}: lease lost; this copy may not publish"))
            finally:
                self._writing = set()
                self._current.set_result(None)


# Far past what one attempt streams (events are tokens, at most a context's worth), within JSON's exact integers.
ATTEMPT_SEQ_STRIDE = 1 << 32


class JobPublisher:
    def __init__(
        self, store: JobStore, writer: EventWriter, lease: JobLease, admission: Admission, outage_s: float
    ) -> None:
        self._store = store
        self._writer = writer
        self._lease = lease
        self._attempt = admission.attempt
        # A later attempt whose earlier attempts' log expired (the job waited in a queue past the stream TTL after
        # its worker died) numbers past anything they could have sent: a reader that saw their events sees a gap,
        # reads the log and meets this attempt's restart, instead of taking its events as theirs continued.
        fresh_start = admission.last_seq == 0 and admission.attempt > 1
        self._seq = (admission.attempt - 1) * ATTEMPT_SEQ_STRIDE if fresh_start else admission.last_seq
        self._outage_s = outage_s
        self._pending: list[Event | PlainToken] = []
        self._error: BaseException | None = None

    @property
    def job_id(self) -> str:
        return self._lease.job_id

    @classmethod
    async def open(
        cls, store: JobStore, writer: EventWriter, lease: JobLease, admission: Admission, outage_s: float
    ) -> JobPublisher:
        """Continues the job's sequence after the admission's last seq; a later attempt first voids what
        earlier ones streamed."""
        publisher = cls(store, writer, lease, admission, outage_s)
        if publisher._seq:
            publisher._queue(RestartEvent(seq=publisher._next_seq(), attempt=admission.attempt))
            await publisher.drain()
        return publisher

    def push(self, delta: Delta, pieces: list[Piece] | None = None, finish_reason: FinishReason | None = None) -> None:
        """Queues a delta, read into `pieces` (engines/output.py; default: its text as it is), for publishing
        as one event; `finish_reason` as its caller sees it (default: the delta's). Raises what made an
        earlier write fail for good."""
        if self._error is not None:
            raise self._error
        if pieces is None:
            pieces, finish_reason = [ContentPiece(delta.text)], delta.finish_reason
        seq, num_tokens = self._next_seq(), len(delta.token_ids)
        if finish_reason is None and not delta.logprobs and all(type(piece) is ContentPiece for piece in pieces):
            text = "".join(piece.text for piece in pieces)
            self._queue(PlainToken(seq, self._attempt, delta.index, text, num_tokens))
            return
        calls: dict[int, ToolCallDelta] = {}
        for piece in pieces:
            if isinstance(piece, CallStart):
                calls[piece.index] = ToolCallDelta(index=piece.index, id=piece.id, name=piece.name)
            elif isinstance(piece, CallArguments):
                call = calls.get(piece.index) or ToolCallDelta(index=piece.index)
                calls[piece.index] = call.model_copy(update={"arguments": call.arguments + piece.text})
        event = TokenEvent(
            seq=seq,
            attempt=self._attempt,
            index=delta.index,
            text="".join(piece.text for piece in pieces if isinstance(piece, ContentPiece)),
            num_tokens=num_tokens,
            finish_reason=finish_reason,
            reasoning="".join(piece.text for piece in pieces if isinstance(piece, ReasoningPiece)) or None,
            tool_calls=list(calls.values()) or None,
            logprobs=list(delta.logprobs) or None,
        )
        self._queue(event)

    async def drain(self) -> None:
        """Waits until every pushed delta is written."""
        await self._writer.written(self)
        if self._error is not None:
            raise self._error

    async def close(self) -> None:
        """Stops publishing (the job ended another way); nothing more is written."""
        self._writer.forget(self)
        self._pending = []

    async def finish(self, record: JobRecord) -> bool:
        """Writes the record after every delta (False: someone else wrote the job's record first).

        Raises LeaseLost when the lease is no longer this copy's. The write releases the lease."""
        await self.drain()
        lease = self._lease
        lease.releasing = True
        written = await retry_transient(lambda: self._store.finish(record, lease.token), self._outage_s, "recording")
        lease.released_by_record = True
        return written

    def take(self) -> EventWrite:
        """The events pushed since the last write (EventWriter's call)."""
        events, self._pending = self._pending, []
        return EventWrite(self.job_id, events, self._lease.token)

    def failed(self, error: BaseException) -> None:
        """A write of this job's failed for good (EventWriter's call): nothing more is published."""
        self._error = error
        self._pending = []

    def _queue(self, event: Event | PlainToken) -> None:
        self._pending.append(event)
        self._writer.schedule(self)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq
