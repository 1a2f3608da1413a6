"""A per-job lease in Redis, so that a job delivered twice (celery#5935) never runs twice at once."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

from tasks import names
from tasks.store import JobStore

# Renew or release only a lease that is still ours: after a long stall another worker may hold it.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


@contextlib.asynccontextmanager
async def job_lease(store: JobStore, job_id: str, ttl_s: float) -> AsyncIterator[bool]:
    """Yields True once this worker holds the job's lease, or False if the job got a record meanwhile.

    A second delivery waits here for the first: it runs the job only if the first worker died (its
    lease lapsed without a record), and otherwise just lets the message go.
    """
    redis, key, token, ttl_ms = store.redis, names.lease_key(job_id), uuid.uuid4().hex, int(ttl_s * 1000)
    while not await redis.set(key, token, nx=True, px=ttl_ms):
        if await store.record(job_id) is not None:
            yield False
            return
        await asyncio.sleep(min(1.0, ttl_s / 3))
    renewer = asyncio.create_task(_keep(redis, key, token, ttl_ms))
    try:
        yield True
    finally:
        renewer.cancel()
        await redis.eval(_RELEASE, 1, key, token)


async def _keep(redis, key: str, token: str, ttl_ms: int) -> None:
    while True:
        await asyncio.sleep(ttl_ms / 3000)
        await redis.eval(_RENEW, 1, key, token, ttl_ms)
