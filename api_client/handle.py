"""A submitted job: wait for its record, read its stream, cancel it. Built from a store and a meta."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from api_client.stream import job_events
from tasks.errors import (
    JobCancelled,
    JobExpired,
    JobLost,
    JobRestarted,
    NoSuchModel,
    error_from_info,
)
from tasks.schemas import ErrorInfo, FinalEvent, JobMeta, JobRecord, JobStatus, RestartEvent, Timings, TokenEvent
from tasks.store import JobStore

# Once a running job's deadline passes, its worker records the expiry; give that record time to land.
DEADLINE_GRACE_S = 5.0


class AsyncJobHandle:
    def __init__(self, store: JobStore, meta: JobMeta, *, just_submitted: bool = False) -> None:
        """`just_submitted`: this process submitted the job moments ago, so it has no record yet and its
        replay log cannot have expired: the first reads skip the record."""
        self._store = store
        self.meta = meta
        self._deadline_at = meta.deadline_at
        self._just_submitted = just_submitted

    @property
    def id(self) -> str:
        return self.meta.job_id

    def __repr__(self) -> str:
        return f"<AsyncJobHandle {self.meta.kind} {self.id} model={self.meta.model}>"

    async def result(self, timeout: float | None = None) -> JobRecord:
        """The job's record once it succeeded; otherwise the error it ended with, raised.

        A timeout only stops this wait (JobTimeout); the job goes on. A job whose deadline passed
        with no worker running it, or whose model has had no live worker for a grace period, is
        expired by whoever waits for it, and its record says so.
        """
        record = None if self._just_submitted else await self._store.record(self.id)
        if record is None:
            async for event in self.events(timeout=timeout):
                if isinstance(event, FinalEvent):
                    record = event.record
        return _succeeded(record)

    async def events(self, timeout: float | None = None) -> AsyncIterator[TokenEvent | RestartEvent | FinalEvent]:
        """Every event of the job's current attempt, in order, from its first (replayed if need be)."""
        events = job_events(
            self._store, self.id, on_quiet=self._look_around, until=_until(timeout), log_is_whole=self._just_submitted
        )
        async for event in events:
            yield event

    async def stream(self, index: int = 0, timeout: float | None = None) -> AsyncIterator[str]:
        """The text deltas of answer `index`; raises the job's error if it does not succeed.

        A job submitted with stream=False yields its whole text once it is done. `timeout` bounds
        the whole stream (JobTimeout); the job goes on.
        """
        streamed = False
        async for event in self.events(timeout=timeout):
            if isinstance(event, TokenEvent):
                if event.index == index and event.text:
                    streamed = True
                    yield event.text
            elif isinstance(event, RestartEvent):
                if streamed:
                    raise JobRestarted(f"job {self.id} restarted on another worker (attempt {event.attempt})")
            else:
                record = _succeeded(event.record)
                if not streamed and record.responses:
                    yield record.responses[index].response_text
                return

    async def cancel(self) -> None:
        """Stops the job: a running one inside its engine (its record keeps the partial text), a queued one
        before it starts. A finished job stays as it is."""
        await self._store.request_cancel(self.id)
        if not await self._store.is_running(self.id):
            await self._store.finish(self._ended(JobStatus.CANCELLED, JobCancelled("cancelled while queued")))

    async def record(self) -> JobRecord | None:
        """The record as it is now, whatever its status; None while the job is not done."""
        return await self._store.record(self.id)

    async def _look_around(self) -> None:
        """Runs whenever the job's channel has been quiet: nobody may wait for ever."""
        # One round trip for the three reads, shared with every other job of this process that looks now.
        meta, record, running = await asyncio.gather(
            self._store.meta(self.id), self._store.record(self.id), self._store.is_running(self.id)
        )
        if meta is None and record is None:
            raise JobLost(f"job {self.id} is gone from Redis (was it restarted without persistence?)")
        if running:
            if self._deadline_at is not None and time.time() >= self._deadline_at:
                # Its worker expires a running job itself; give that record time to land.
                self._deadline_at = time.time() + DEADLINE_GRACE_S
            return
        if self._deadline_at is not None and time.time() >= self._deadline_at:
            await self._expire(JobExpired("the deadline passed while the job was queued"))
            return
        unserved_s = await self._store.fleet.unserved_for_s(self.meta.model)
        if unserved_s >= self._store.settings.no_worker_grace_s:
            listing = ", ".join(sorted(self._store.fleet.served())) or "none"
            await self._expire(
                NoSuchModel(
                    f"no live worker has served model {self.meta.model!r} for {unserved_s:.0f} s (served: {listing})",
                    field="model",
                )
            )

    async def _expire(self, error: JobExpired) -> None:
        await self._store.request_cancel(self.id)  # a worker that takes it later lets it go
        await self._store.finish(self._ended(JobStatus.EXPIRED, error))  # its final event ends every reader

    def _ended(self, status: JobStatus, error: JobExpired | JobCancelled) -> JobRecord:
        return JobRecord(
            job_id=self.id,
            kind=self.meta.kind,
            status=status,
            model=self.meta.model,
            timings=Timings(queued_at=self.meta.queued_at, finished_at=time.time()),
            error=ErrorInfo.of(error),
        )


def _until(timeout: float | None) -> float | None:
    return None if timeout is None else asyncio.get_running_loop().time() + timeout


def _succeeded(record: JobRecord) -> JobRecord:
    if record.error is not None:
        raise error_from_info(record.error, record)
    return record
