"""One job from delivery to record, on the engine loop.

The order matters: validate (no lease needed to refuse garbage), skip a job that already has a record,
take the lease, count the delivery, honour a cancel or an expired deadline, and only then touch the
engine. Every path that ends the job writes its one record through `JobStore.finish`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from engines.base import ResponseBuilder
from engines.errors import EngineDead, EngineError, InferqError, InvalidRequest
from tasks import names
from tasks.errors import JobCancelled, JobExpired, JobFailed
from tasks.schemas import ChatJob, ErrorInfo, JobRecord, ScoreJob, Timings, Usage, parse_job
from worker.lease import job_lease
from worker.publisher import JobPublisher
from worker.runner import EngineRunner, RunningJob

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Finished:
    record: JobRecord
    written: bool  # False: someone else (a client that cancelled it, say) wrote the job's record first


@dataclass(frozen=True)
class Skipped:
    """Another delivery ran this job, or will: let this message go without a record."""

    reason: str


@dataclass(frozen=True)
class Requeue:
    """The engine died under the job: give it back to the queue for a healthy worker."""

    reason: str


Outcome = Finished | Skipped | Requeue


async def run_job(runner: EngineRunner, job_id: str, kind: str, args: tuple, kwargs: dict, worker: str) -> Outcome:
    store = runner.store
    received_at = time.time()
    try:
        job = parse_job(_payload(args, kwargs), kind)
    except InvalidRequest as error:
        run = JobRun(runner, job_id, kind, runner.served_name, worker, 0, Timings(queued_at=received_at))
        record = run.record(error=error)
        return Finished(record, await store.finish(record))
    if await store.record(job_id) is not None:
        return Skipped("the job already has a record")
    async with job_lease(store, job_id, runner.settings.lease_ttl_s) as held:
        if not held:
            return Skipped("another delivery finished the job")
        attempt = await store.redis.incr(names.deliveries_key(job_id))
        await store.redis.expire(names.deliveries_key(job_id), runner.settings.record_ttl_s)
        timings = Timings(queued_at=job.queued_at, started_at=received_at)
        run = JobRun(runner, job_id, kind, job.model, worker, attempt, timings)
        publisher = await JobPublisher.open(store, job_id, attempt)
        refusal = await _refusal(runner, job, job_id, attempt)
        try:
            record = run.record(error=refusal) if refusal else await run.execute(job, publisher)
        except EngineDead as dead:
            return Requeue(str(dead))
        return Finished(record, await publisher.finish(record))


def _payload(args: tuple, kwargs: dict) -> Any:
    if kwargs or len(args) != 1:
        raise InvalidRequest("the task takes exactly one positional argument, the job object", field="payload")
    return args[0]


async def _refusal(runner: EngineRunner, job: ChatJob | ScoreJob, job_id: str, attempt: int) -> InferqError | None:
    """Why the job must not run now, if it must not."""
    if attempt > runner.settings.max_deliveries:
        return JobFailed(f"delivered {attempt} times; every earlier attempt died with its worker (out of memory?)")
    if await runner.store.cancel_requested(job_id):
        return JobCancelled("cancelled before it started")
    if job.deadline_at is not None and time.time() >= job.deadline_at:
        return JobExpired("the deadline passed while the job was queued")
    if job.model != runner.served_name:
        # Routing makes this impossible unless someone sent the job to the wrong queue by hand.
        return InvalidRequest(f"this worker serves {runner.served_name!r}", field="model")
    return None


_STATUS_OF_ERROR = ((JobCancelled, "cancelled"), (JobExpired, "expired"))


@dataclass
class JobRun:
    runner: EngineRunner
    job_id: str
    kind: str
    model: str
    worker: str
    attempt: int
    timings: Timings

    async def execute(self, job: ChatJob | ScoreJob, publisher: JobPublisher) -> JobRecord:
        engine = self.runner.engine
        running = RunningJob(self.job_id, abort=lambda: engine.abort(self.job_id))
        self.runner.running[self.job_id] = running
        loop = asyncio.get_running_loop()
        deadline = None if job.deadline_at is None else loop.time() + (job.deadline_at - time.time())
        try:
            async with asyncio.timeout_at(deadline):
                if isinstance(job, ChatJob):
                    return await self._chat(job, publisher, running)
                return await self._score(job, running)
        except TimeoutError:
            # the engine request was aborted on the way out (aclosing in _chat)
            return self.record(error=JobExpired("the deadline passed while the job ran"))
        except EngineDead:
            raise
        except EngineError as error:
            log.warning("job %s failed in the engine: %s", self.job_id, error)
            return self.record(error=error)
        finally:
            del self.runner.running[self.job_id]

    async def _chat(self, job: ChatJob, publisher: JobPublisher, running: RunningJob) -> JobRecord:
        engine = self.runner.engine
        try:
            request = engine.prepare_chat(
                job.messages,
                job.system,
                job.tools,
                job.images,
                job.videos,
                job.audios,
                request_id=self.job_id,
                adapter=job.adapter,
                **job.params.model_dump(exclude_none=True),
            )
        except InvalidRequest as error:
            return self.record(error=error)
        builder = ResponseBuilder(request.params.n, request.prompt_length)
        async with aclosing(engine.generate(request)) as deltas:
            async for delta in deltas:
                if self.timings.first_token_at is None and delta.token_ids:
                    self.timings = self.timings.model_copy(update={"first_token_at": time.time()})
                builder.add(delta)
                if job.stream:
                    await publisher.delta(delta)
        return self.record(
            error=JobCancelled("cancelled while generating") if running.cancelled else None,
            responses=builder.responses(),
            usage=Usage(prompt_tokens=request.prompt_length, completion_tokens=builder.completion_tokens),
        )

    async def _score(self, job: ScoreJob, running: RunningJob) -> JobRecord:
        extra = {} if job.max_length is None else {"max_length": job.max_length}
        scoring = asyncio.ensure_future(self.runner.engine.get_scores(job.texts, **extra))

        async def abort() -> None:  # a forward pass cannot stop midway; its result is dropped
            scoring.cancel()

        running.abort = abort
        try:
            scores = await scoring
        except asyncio.CancelledError:
            if not running.cancelled:
                raise
            return self.record(error=JobCancelled("cancelled while scoring"))
        except InvalidRequest as error:
            return self.record(error=error)
        return self.record(scores=scores)

    def record(self, error: InferqError | None = None, **results: Any) -> JobRecord:
        status = "succeeded"
        if error is not None:
            status = next((s for cls, s in _STATUS_OF_ERROR if isinstance(error, cls)), "failed")
        return JobRecord(
            job_id=self.job_id,
            kind=self.kind,
            status=status,
            model=self.model,
            engine=self.runner.settings.engine,
            worker=self.worker,
            host=socket.gethostname(),
            attempt=self.attempt,
            timings=self.timings.model_copy(update={"finished_at": time.time()}),
            error=ErrorInfo.of(error) if error is not None else None,
            **results,
        )
