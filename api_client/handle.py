"""A submitted job: wait for its record, read its stream, cancel it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from tasks.errors import JobCancelled, JobExpired, JobRestarted, JobTimeout, NoSuchModel, error_from_info
from tasks.schemas import ErrorInfo, FinalEvent, JobMeta, JobRecord, RestartEvent, Timings, TokenEvent
from api_client.stream import job_events

if TYPE_CHECKING:
    from api_client.async_client import AsyncInferQClient

# Once a running job's deadline passes, its worker records the expiry; give that record time to land.
DEADLINE_GRACE_S = 5.0


class AsyncJobHandle:
    def __init__(self, client: AsyncInferQClient, meta: JobMeta) -> None:
        self._client = client
        self._store = client.store
        self.meta = meta
        self._deadline_at = meta.deadline_at

    @property
    def id(self) -> str:
        return self.meta.job_id

    def __repr__(self) -> str:
        return f"<AsyncJobHandle {self.meta.kind} {self.id} model={self.meta.model}>"

    async def result(self, timeout: float | None = None) -> JobRecord:
        """The job's record once it succeeded; otherwise the error it ended with, raised.

        A timeout only stops this wait (JobTimeout); the job goes on. A job whose deadline passed
        with no worker running it is expired by whoever waits for it, and its record says so.
        """
        record = await self._store.record(self.id)
        if record is None:
            try:
                async with asyncio.timeout(timeout):
                    async for event in self.events():
                        if isinstance(event, FinalEvent):
                            record = event.record
            except TimeoutError:
                raise JobTimeout(f"no result after {timeout} s; the job goes on (job {self.id})") from None
        return _succeeded(record)

    async def events(self) -> AsyncIterator[TokenEvent | RestartEvent | FinalEvent]:
        """Every event of the job's current attempt, in order, from its first (replayed if need be)."""
        async for event in job_events(self._store, self.id, on_quiet=self._enforce_deadline):
            yield event

    async def stream(self, index: int = 0) -> AsyncIterator[str]:
        """The text deltas of answer `index`; raises the job's error if it does not succeed.

        A job submitted with stream=False yields its whole text once it is done.
        """
        streamed = False
        async for event in self.events():
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
            await self._store.finish(self._ended("cancelled", JobCancelled("cancelled while queued")))

    async def record(self) -> JobRecord | None:
        """The record as it is now, whatever its status; None while the job is not done."""
        return await self._store.record(self.id)

    async def _enforce_deadline(self) -> None:
        if self._deadline_at is None or time.time() < self._deadline_at:
            return
        if await self._store.is_running(self.id):
            # Its worker expires a running job itself; give that record time to land.
            self._deadline_at = time.time() + DEADLINE_GRACE_S
            return
        await self._expire()

    async def _expire(self) -> None:
        await self._store.request_cancel(self.id)  # a worker that takes it later lets it go
        served = {info.model for info in await self._client.workers()}
        if self.meta.model in served:
            error: JobExpired = JobExpired("the deadline passed while the job was queued")
        else:
            listing = ", ".join(sorted(served)) or "none"
            error = NoSuchModel(f"no live worker serves model {self.meta.model!r} (served: {listing})", field="model")
        await self._store.finish(self._ended("expired", error))  # its final event ends every reader

    def _ended(self, status: str, error: JobExpired | JobCancelled) -> JobRecord:
        return JobRecord(
            job_id=self.id,
            kind=self.meta.kind,
            status=status,
            model=self.meta.model,
            timings=Timings(queued_at=self.meta.queued_at, finished_at=time.time()),
            error=ErrorInfo.of(error),
        )


def _succeeded(record: JobRecord) -> JobRecord:
    if record.error is not None:
        raise error_from_info(record.error, record)
    return record
