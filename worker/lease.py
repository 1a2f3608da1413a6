"""A per-job lease in Redis, so that a job delivered twice (celery#5935) never runs twice at once.

The holder renews it every third of its lifetime and rides out Redis errors by retrying until the
lease would lapse. If it cannot renew in time (no answer at all counts), or finds the lease taken, the
lease is lost: `lost` is set and `on_lost` runs (the job's engine request is aborted). Every write the
job makes carries the lease's token (tasks/store.py checks it in Redis), so a copy that lost its lease
can neither publish nor record, even before it notices: two copies never both write. The record's write
releases the lease (`released_by_record`), so a finished job costs no round trip to let go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from tasks.store import Admission, JobStore

log = logging.getLogger(__name__)

RETRY_S = 0.2  # between renewal attempts while Redis does not answer


class JobLease:
    def __init__(self, store: JobStore, job_id: str, ttl_s: float) -> None:
        self._store = store
        self.job_id = job_id
        self.ttl_s = ttl_s
        self.token = uuid.uuid4().hex
        self.lost = asyncio.Event()
        self.on_lost: Callable[[], Awaitable[None]] | None = None
        self._renewer: asyncio.Task[None] | None = None
        # Set before the record is written: the write releases the lease, so the renewer, finding it gone,
        # knows why; then true once the write went through, and there is nothing left to release.
        self.releasing = False
        self.released_by_record = False

    async def acquire(self, give_up: Callable[[], bool] | None = None) -> Admission:
        """Takes the lease, waiting while another delivery holds it; the admission says what the job's
        state was when it was taken ("recorded": the job is done, and no lease was taken; "held": another
        delivery still held it when `give_up()` said to stop waiting).

        A second delivery waits here for the first: it runs the job only if the first worker died (its
        lease lapsed without a record), and otherwise lets its message go.
        """
        while (admission := await self._store.admit(self.job_id, self.token, self.ttl_s)).outcome == "held":
            if give_up is not None and give_up():
                return admission
            await asyncio.sleep(min(1.0, self.ttl_s / 3))
        if admission.outcome == "admitted":
            self._renewer = asyncio.create_task(self._keep(), name=f"inferq-lease-{self.job_id}")
        return admission

    async def release(self, *, handed_back: bool = False) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer  # it raises nothing else: _lose keeps what on_lost raises
        if not self.lost.is_set() and not self.released_by_record:
            with contextlib.suppress(RedisError):  # unreleased, it lapses by itself
                await self._store.release_lease(self.job_id, self.token, handed_back=handed_back)

    async def _keep(self) -> None:
        loop = asyncio.get_running_loop()
        expires_at = loop.time() + self.ttl_s
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            while True:
                try:
                    # Bounded by the lease itself: a partitioned link answers nothing, not even an error, and TCP
                    # gives up only after about 15 minutes, while another worker may run the job once it lapses.
                    async with asyncio.timeout_at(expires_at):
                        renewed = await self._store.renew_lease(self.job_id, self.token, self.ttl_s)
                    if not renewed:
                        if self.releasing:
                            return  # the record's write let it go; that write says whether it was still ours
                        return await self._lose("it lapsed and may be another worker's now")
                    expires_at = loop.time() + self.ttl_s
                    break
                except RedisError as error:
                    if loop.time() + RETRY_S >= expires_at:
                        return await self._lose(f"Redis did not answer before it lapsed ({error})")
                    await asyncio.sleep(RETRY_S)
                except TimeoutError:
                    return await self._lose("Redis sent no answer at all before it lapsed (a partition?)")

    async def _lose(self, why: str) -> None:
        log.error("job %s: lease lost: %s; stopping this copy", self.job_id, why)
        self.lost.set()
        if self.on_lost is not None:
            try:
                await self.on_lost()
            except Exception:
                # An abort that failed leaves the copy running, but fenced: its next write raises LeaseLost and
                # the job goes back to the queue. Raised from here it would end the job's run with it instead.
                log.exception("job %s: stopping the copy that lost its lease failed", self.job_id)
