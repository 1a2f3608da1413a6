"""One job's events, in order, on its replay log and live channel, under its lease.

Deltas are pushed without waiting and written by one flusher task: while a write is in flight the
next deltas gather, so a busy engine publishes a whole step's tokens in one round trip instead of one
per token, and the job never waits on Redis between engine steps. Each write carries the lease's
token, so a copy of the job that lost its lease cannot publish; a Redis that restarts or refuses
writes for a while is ridden out with retries (`redis_outage_s`).
"""

from __future__ import annotations

import asyncio

from engines.pieces import CallArguments, CallStart, ContentPiece, Piece, ReasoningPiece
from engines.schemas import Delta, FinishReason
from tasks.redis_connection import retry_transient
from tasks.schemas import JobRecord, RestartEvent, TokenEvent, ToolCallDelta
from tasks.store import Admission, Event, JobStore
from worker.lease import JobLease


class JobPublisher:
    def __init__(self, store: JobStore, lease: JobLease, attempt: int, last_seq: int, outage_s: float) -> None:
        self._store = store
        self._lease = lease
        self._attempt = attempt
        self._seq = last_seq
        self._outage_s = outage_s
        self._pending: list[Event] = []
        self._flusher: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    @classmethod
    async def open(cls, store: JobStore, lease: JobLease, admission: Admission, outage_s: float) -> JobPublisher:
        """Continues the job's sequence after the admission's last seq; a later attempt first voids what
        earlier ones streamed."""
        publisher = cls(store, lease, admission.attempt, admission.last_seq, outage_s)
        if admission.last_seq:
            await publisher._write([RestartEvent(seq=publisher._next_seq(), attempt=admission.attempt)])
        return publisher

    def push(self, delta: Delta, pieces: list[Piece] | None = None, finish_reason: FinishReason | None = None) -> None:
        """Queues a delta, read into `pieces` (engines/output.py; default: its text as it is), for publishing;
        `finish_reason` as its caller sees it (default: the delta's). Raises what made an earlier write fail
        for good."""
        if self._error is not None:
            raise self._error
        if pieces is None:
            pieces, finish_reason = [ContentPiece(delta.text)], delta.finish_reason
        calls: dict[int, ToolCallDelta] = {}
        for piece in pieces:
            if isinstance(piece, CallStart):
                calls[piece.index] = ToolCallDelta(index=piece.index, id=piece.id, name=piece.name)
            elif isinstance(piece, CallArguments):
                call = calls.get(piece.index) or ToolCallDelta(index=piece.index)
                calls[piece.index] = call.model_copy(update={"arguments": call.arguments + piece.text})
        self._pending.append(
            TokenEvent(
                seq=self._next_seq(),
                attempt=self._attempt,
                index=delta.index,
                text="".join(piece.text for piece in pieces if isinstance(piece, ContentPiece)),
                num_tokens=len(delta.token_ids),
                finish_reason=finish_reason,
                reasoning="".join(piece.text for piece in pieces if isinstance(piece, ReasoningPiece)) or None,
                tool_calls=list(calls.values()) or None,
                logprobs=list(delta.logprobs) or None,
            )
        )
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    async def drain(self) -> None:
        """Waits until every pushed delta is written."""
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
        if self._error is not None:
            raise self._error

    async def close(self) -> None:
        """Stops publishing (the job ended another way); nothing more is written."""
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)

    async def finish(self, record: JobRecord) -> bool:
        """Writes the record after every delta (False: someone else wrote the job's record first).

        Raises LeaseLost when the lease is no longer this copy's. The write releases the lease."""
        await self.drain()
        lease = self._lease
        lease.releasing = True
        written = await retry_transient(lambda: self._store.finish(record, lease.token), self._outage_s, "recording")
        lease.released_by_record = True
        return written

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._write(batch)
            except Exception as error:  # LeaseLost, or Redis away for longer than redis_outage_s
                self._error = error
                return

    async def _write(self, events: list[Event]) -> None:
        job_id, token = self._lease.job_id, self._lease.token
        await retry_transient(lambda: self._store.append(job_id, events, token), self._outage_s, "publishing")

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq
