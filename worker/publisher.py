"""One job's token events, in order, on its replay log and pub/sub channel."""

from __future__ import annotations

from engines.schemas import Delta
from tasks.schemas import JobRecord, RestartEvent, TokenEvent
from tasks.store import JobStore


class JobPublisher:
    def __init__(self, store: JobStore, job_id: str, attempt: int, first_seq: int) -> None:
        self._store = store
        self._job_id = job_id
        self._attempt = attempt
        self._seq = first_seq - 1

    @classmethod
    async def open(cls, store: JobStore, job_id: str, attempt: int) -> JobPublisher:
        """Continues the job's sequence; a later attempt first voids what earlier ones streamed."""
        last_seq = await store.last_seq(job_id)
        publisher = cls(store, job_id, attempt, last_seq + 1)
        if last_seq:
            await store.append(job_id, RestartEvent(seq=publisher._next_seq(), attempt=attempt))
        return publisher

    async def delta(self, delta: Delta) -> None:
        event = TokenEvent(
            seq=self._next_seq(),
            attempt=self._attempt,
            index=delta.index,
            text=delta.text,
            num_tokens=len(delta.token_ids),
            finish_reason=delta.finish_reason,
        )
        await self._store.append(self._job_id, event)

    async def finish(self, record: JobRecord) -> bool:
        return await self._store.finish(record, next_seq=self._next_seq())

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq
