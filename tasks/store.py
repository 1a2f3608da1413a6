"""The Redis side of the contract: job records, replay logs and cancel marks, for workers and clients alike.

Both sides go through this one class, so the key layout and encodings exist once.
"""

from __future__ import annotations

from redis.asyncio import Redis

from tasks import names
from tasks.config import QueueSettings
from tasks.schemas import STREAM_EVENT, FinalEvent, JobMeta, JobRecord, RestartEvent, TokenEvent

EVENT_FIELD = "e"

Event = TokenEvent | RestartEvent | FinalEvent


class JobStore:
    def __init__(self, redis: Redis, settings: QueueSettings) -> None:
        self.redis = redis  # decode_responses=True
        self.settings = settings

    # -- records ---------------------------------------------------------------------------

    async def finish(self, record: JobRecord, next_seq: int | None = None) -> bool:
        """Writes the job's record unless one exists, then appends the final event.

        Returns False when another party (a duplicate delivery, a client that cancelled or expired
        the job) wrote the record first: a job has exactly one record.
        """
        written = await self.redis.set(
            names.record_key(record.job_id), record.model_dump_json(), nx=True, ex=self.settings.record_ttl_s
        )
        if not written:
            return False
        seq = next_seq if next_seq is not None else await self.last_seq(record.job_id) + 1
        await self.append(record.job_id, FinalEvent(seq=seq, record=record))
        return True

    async def record(self, job_id: str) -> JobRecord | None:
        raw = await self.redis.get(names.record_key(job_id))
        return JobRecord.model_validate_json(raw) if raw else None

    async def save_meta(self, meta: JobMeta) -> None:
        await self.redis.set(names.job_key(meta.job_id), meta.model_dump_json(), ex=self.settings.record_ttl_s)

    async def meta(self, job_id: str) -> JobMeta | None:
        raw = await self.redis.get(names.job_key(job_id))
        return JobMeta.model_validate_json(raw) if raw else None

    # -- events ----------------------------------------------------------------------------

    async def append(self, job_id: str, event: Event) -> None:
        """Logs the event for late readers and publishes it for live ones, in one round trip."""
        encoded = event.model_dump_json()
        key = names.events_key(job_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            # Entry id 0-<seq>: readers resume from a sequence number with a plain XRANGE.
            pipe.xadd(key, {EVENT_FIELD: encoded}, id=f"0-{event.seq}")
            pipe.expire(key, self.settings.stream_ttl_s)
            pipe.publish(names.events_channel(job_id), encoded)
            await pipe.execute()

    async def events_after(self, job_id: str, seq: int) -> list[Event]:
        entries = await self.redis.xrange(names.events_key(job_id), min=f"0-{seq + 1}")
        return [decode_event(fields[EVENT_FIELD]) for _, fields in entries]

    async def last_seq(self, job_id: str) -> int:
        entries = await self.redis.xrevrange(names.events_key(job_id), count=1)
        return int(entries[0][0].split("-")[1]) if entries else 0

    # -- cancellation ----------------------------------------------------------------------

    async def request_cancel(self, job_id: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(names.cancel_key(job_id), "1", ex=self.settings.record_ttl_s)
            pipe.publish(names.CANCEL_CHANNEL, job_id)
            await pipe.execute()

    async def cancel_requested(self, job_id: str) -> bool:
        return bool(await self.redis.exists(names.cancel_key(job_id)))

    async def is_running(self, job_id: str) -> bool:
        return bool(await self.redis.exists(names.lease_key(job_id)))


def decode_event(raw: str | bytes) -> Event:
    return STREAM_EVENT.validate_json(raw)
