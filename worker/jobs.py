"""One job from delivery to record, on the engine loop.

The order matters: refuse garbage (no lease needed), then be admitted (one Redis script: a job that has a
record is let go; otherwise the lease is taken, waiting while another delivery holds it, the delivery
counted, the cancel mark and the replay log's end read), register as running, and only then look for a
cancel or an expired deadline (a cancel published before the admission is found by its mark, one heard
between the admission and the registration by the runner's memory of recent cancels, one published after
it by the listener), and only then touch the engine.

No unrecorded exit: every path ends in exactly one of
- Finished: the job's one record was written (or someone else's stands);
- Skipped: another delivery has run or is running the job; this message goes without a record;
- Requeue: the job goes back to the queue without a record, because this copy lost its lease, Redis
  stayed away for longer than `redis_outage_s`, the worker's shutdown grace ran out (worker/shutdown.py),
  or the engine died (then the worker stops too).
Any other exception becomes a failed record: its type and message, never a traceback.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import socket
import time
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from engines.errors import EngineDead, EngineError, InferqError, InvalidRequest
from engines.response_builder import ResponseBuilder
from tasks.errors import JobCancelled, JobExpired, JobFailed, JobTimeLimit, LeaseLost
from tasks.redis_connection import retry_transient
from tasks.schemas import ChatJob, ErrorInfo, JobRecord, JobStatus, ScoreJob, Timings, Usage, parse_job
from tasks.store import JobStore
from worker.lease import JobLease
from worker.publisher import JobPublisher
from worker.runner import EngineRunner, RunningJob

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Finished:
    record: JobRecord
    written: bool  # False: someone else (a client that cancelled it, say) wrote the job's record first


@dataclass(frozen=True)
class Skipped:
    """Another delivery ran this job, or runs it now: let this message go without a record."""

    reason: str


@dataclass(frozen=True)
class Requeue:
    """Give the message back to the queue without a record; `fatal`: the engine died, stop the worker."""

    reason: str
    fatal: bool = False


Outcome = Finished | Skipped | Requeue
HANDED_BACK = "the worker is shutting down and its grace ran out; another worker runs the job"
# A job this small (JSON) is templated and tokenized on the engine loop, without images: its work is less
# than the thread switches that would move it off the loop (worker/runner.py: prepare).
INLINE_PREPARE_BYTES = 8192


async def run_job(
    runner: EngineRunner, job_id: str, kind: str, args: tuple, kwargs: dict, worker: str, priority: int
) -> Outcome:
    run = JobRun(runner, job_id, kind, runner.served_name, worker, received_at=time.time(), priority=priority)
    try:
        return await run.deliver(args, kwargs)
    except Exception as error:
        return await _ended_by(run, error)
    except asyncio.CancelledError:
        # Not the job's doing (an engine's executor shut down under it, the loop stopping). Raised, it would fail
        # the Celery task, which acks it: the job would be gone with no record. Requeued, the job's delivery
        # count still bounds how often that may happen (its lease is not released as handed back).
        log.error("job %s: its run was cancelled inside the worker; back to the queue", job_id)
        return Requeue("its run was cancelled inside the worker")
    finally:
        await run.close()


async def _ended_by(run: JobRun, error: Exception) -> Outcome:
    if isinstance(error, EngineDead):
        return Requeue(str(error), fatal=True)
    if isinstance(error, LeaseLost | RedisError):
        # Back to the queue whole, no worker died: not held against the job's deliveries (when the release
        # can still be written; a lease that lapses in an outage counts as a death).
        run.handing_back = True
        return Requeue(f"{type(error).__name__}: {error}")
    # The last resort: a bug somewhere (a backend's chunk handling, say) still ends in a record.
    log.exception("job %s failed unexpectedly", run.job_id)
    record = run.record(error=JobFailed(f"{type(error).__name__}: {error}"))
    try:
        try:
            return await run.finish(record)
        except (LeaseLost, RedisError):
            raise
        except Exception:  # the event writer itself failed (not Redis): the record goes straight to the store
            log.exception("job %s: its events could not be written; recording its failure directly", run.job_id)
            return await run.finish(record, past_the_publisher=True)
    except (LeaseLost, RedisError) as unrecorded:
        return Requeue(f"could not record the failure ({type(unrecorded).__name__}: {unrecorded})")


@dataclass
class JobRun:
    runner: EngineRunner
    job_id: str
    kind: str
    model: str
    worker: str
    received_at: float
    priority: int  # the queue's (0 highest): the engine admits a more urgent request first
    timings: Timings | None = None
    payload_bytes: int = 0
    attempt: int = 0
    deaths: int = 0  # the earlier deliveries that died with their worker (not those handed back whole)
    handing_back: bool = False  # this delivery goes back to the queue whole (a shutdown's grace ran out)
    lease: JobLease | None = None
    publisher: JobPublisher | None = None
    builder: ResponseBuilder | None = None
    running: RunningJob | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # Until the payload is parsed, when the producer queued it is unknown.
        self.timings = Timings(queued_at=self.received_at)

    @property
    def store(self) -> JobStore:
        return self.runner.store

    async def deliver(self, args: tuple, kwargs: dict) -> Outcome:
        settings = self.runner.settings
        try:
            payload, self.payload_bytes = _payload(args, kwargs, settings.max_payload_bytes)
            job = parse_job(payload, self.kind)
        except InvalidRequest as error:
            return await self.finish(self.record(error=error))
        self.model = job.model
        self.lease = JobLease(self.store, self.job_id, settings.lease_ttl_s)
        # A delivery waiting on another worker's lease stops waiting when this worker's shutdown grace runs out:
        # nothing here would ever hand it back, and the shutdown would end in its forced exit.
        admission = await self.lease.acquire(give_up=lambda: self.runner.handing_back)
        if admission.outcome == "recorded":
            return Skipped("the job already has a record")
        if admission.outcome == "held":
            return Requeue(f"{HANDED_BACK} (it waited on another delivery's lease)")
        self.attempt = admission.attempt
        self.deaths = admission.attempt - 1 - admission.handed_back
        # No await between the admission and the registration: a cancel the listener hears from here on
        # finds the job registered; one heard before, the runner remembers.
        self.running = RunningJob(self.job_id, abort=lambda: self.runner.engine.abort(self.job_id))
        self.runner.running[self.job_id] = self.running
        self.lease.on_lost = self.running.stop
        cancelled = admission.cancelled or self.runner.heard_cancel(self.job_id)
        self.timings = Timings(queued_at=job.queued_at, started_at=self.received_at)
        self.publisher = await JobPublisher.open(
            self.store, self.runner.events, self.lease, admission, settings.redis_outage_s
        )
        if self.runner.handing_back:
            return self._handed_back()
        refusal = self._refusal(job, cancelled or self.running.cancelled)
        if refusal is None:
            self.runner.metrics.job_started()  # a delivery refused (cancelled, expired...) never ran
        record = self.record(error=refusal) if refusal else await self._execute(job)
        if self.lease.lost.is_set():
            raise LeaseLost(f"job {self.job_id}: lease lost while it ran")
        if self.running.handed_back:
            return self._handed_back()
        return await self.finish(record)

    def _handed_back(self) -> Requeue:
        self.handing_back = True  # released as such: the next delivery does not count this one as a death
        return Requeue(HANDED_BACK)

    async def finish(self, record: JobRecord, *, past_the_publisher: bool = False) -> Finished:
        """Writes the job's record after its events; `past_the_publisher`: straight to the store, for a
        publisher whose writer failed."""
        if self.publisher is not None and not past_the_publisher:
            written = await self.publisher.finish(record)
        else:
            written = await self._record(record)
        if written:  # a record someone else wrote is theirs to count
            self.runner.metrics.job_recorded(record)
        return Finished(record, written)

    async def _record(self, record: JobRecord) -> bool:
        """The record, fenced by the lease when one was taken; refused before any lease was taken, nobody else
        may have run the job, and SET NX keeps one record."""
        lease = self.lease
        if lease is not None:
            lease.releasing = True
        token = None if lease is None else lease.token
        budget_s = self.runner.settings.redis_outage_s
        written = await retry_transient(lambda: self.store.finish(record, token), budget_s, "recording")
        if lease is not None:
            lease.released_by_record = True
        return written

    async def close(self) -> None:
        if self.running is not None and self.runner.running.get(self.job_id) is self.running:
            # only this copy's registration: a second delivery that is let go must not hide the running one
            del self.runner.running[self.job_id]
        if self.publisher is not None:
            await self.publisher.close()
        if self.lease is not None:
            await self.lease.release(handed_back=self.handing_back)

    def _refusal(self, job: ChatJob | ScoreJob, cancelled: bool) -> InferqError | None:
        """Why the job must not run now, if it must not."""
        if self.deaths >= self.runner.settings.max_deliveries:
            return JobFailed(
                f"delivered {self.attempt} times; {self.deaths} earlier attempts died with their worker "
                "(out of memory?)"
            )
        if cancelled:
            return JobCancelled("cancelled before it started")
        if job.deadline_at is not None and time.time() >= job.deadline_at:
            return JobExpired("the deadline passed while the job was queued")
        if job.model != self.runner.served_name:
            # Routing makes this impossible unless someone sent the job to the wrong queue by hand.
            return InvalidRequest(f"this worker serves {self.runner.served_name!r}", field="model")
        return None

    async def _execute(self, job: ChatJob | ScoreJob) -> JobRecord:
        loop = asyncio.get_running_loop()
        deadline = None if job.deadline_at is None else loop.time() + (job.deadline_at - time.time())
        # the worker's limit is the operator's: a job may ask for less, never for more
        limits = [limit for limit in (job.max_runtime_s, self.runner.settings.max_runtime_s) if limit is not None]
        max_runtime_s = min(limits, default=None)
        time_limit = None if max_runtime_s is None else loop.time() + max_runtime_s
        ends_at = min((t for t in (deadline, time_limit) if t is not None), default=None)
        limit = asyncio.timeout_at(ends_at)
        try:
            async with limit:
                if isinstance(job, ChatJob):
                    await self._chat(job)
                else:
                    return await self._score(job)
        except TimeoutError:
            if not limit.expired():
                raise  # a TimeoutError of the engine's own (a socket's): a failure, not the job's limit
            # the engine request was aborted on the way out (aclosing in _chat); the text so far stays
            if ends_at == time_limit:
                error: InferqError = JobTimeLimit(f"ran longer than its max_runtime_s ({max_runtime_s:g} s)")
            else:
                error = JobExpired("the deadline passed while the job ran")
            return self.record(error=error, **self._partial())
        except EngineError as error:
            if isinstance(error, EngineDead):
                raise
            log.warning("job %s failed in the engine: %s", self.job_id, error)
            return self.record(error=error, **self._partial())
        except InvalidRequest as error:
            return self.record(error=error)
        cancelled = JobCancelled("cancelled while generating") if self.running.cancelled else None
        return self.record(error=cancelled, **self._partial())

    async def _chat(self, job: ChatJob) -> None:
        engine = self.runner.engine
        params = job.params.model_dump(exclude_none=True)
        if job.prompt is not None:  # a completion: the raw prompt, no chat template
            prepare = functools.partial(
                engine.prepare_completion,
                job.prompt,
                request_id=self.job_id,
                adapter=job.adapter,
                priority=self.priority,
                **params,
            )
        else:
            prepare = functools.partial(
                engine.prepare_chat,
                job.messages,
                job.system,
                job.tools,
                job.images,
                job.videos,
                job.audios,
                request_id=self.job_id,
                adapter=job.adapter,
                priority=self.priority,
                **params,
            )
        request = await self.runner.prepare(prepare, small=_light(job, self.payload_bytes))
        self.builder = ResponseBuilder.for_request(request)
        if self.running.stopped:
            return  # cancelled (or its lease lost) while it was being prepared: the engine never sees it
        # An engine learns of a request when its generator first runs: an abort sent before that finds
        # nothing to abort, so the first delta after a stop sends it again.
        aborted_in_engine = False
        async with aclosing(engine.generate(request)) as deltas:
            async for delta in deltas:
                if self.running.stopped and not aborted_in_engine:
                    aborted_in_engine = True
                    await engine.abort(self.job_id)
                if self.timings.first_token_at is None and delta.token_ids:
                    self.timings = self.timings.model_copy(update={"first_token_at": time.time()})
                pieces = self.builder.add(delta)
                if job.stream:
                    finish_reason = self.builder.finish_reason(delta.index) if delta.finish_reason else None
                    self.publisher.push(delta, pieces, finish_reason)

    async def _score(self, job: ScoreJob) -> JobRecord:
        engine = self.runner.engine
        texts = job.texts
        if texts is None:  # rendered with the model's template, off the loop like any prompt

            def render() -> list[str]:
                return [engine.render_for_scoring(conversation) for conversation in job.conversations]

            texts = await self.runner.prepare(render, small=self.payload_bytes <= INLINE_PREPARE_BYTES)
        if self.running.stopped:  # cancelled while its texts were rendered (the engine's abort found nothing)
            return self.record(error=JobCancelled("cancelled before scoring"))
        extra = {} if job.max_length is None else {"max_length": job.max_length}
        scoring = asyncio.ensure_future(engine.get_scores(texts, **extra))

        async def abort() -> None:  # a forward pass cannot stop midway; its result is dropped
            scoring.cancel()

        self.running.abort = abort
        try:
            scores = await scoring
        except asyncio.CancelledError:
            if not self.running.stopped:
                raise
            return self.record(error=JobCancelled("cancelled while scoring"))
        return self.record(scores=scores)

    def _partial(self) -> dict[str, Any]:
        """What a chat generated so far: its responses and usage (nothing for a score job)."""
        if self.builder is None:
            return {}
        usage = Usage(prompt_tokens=self.builder.prompt_length, completion_tokens=self.builder.completion_tokens)
        return {"responses": self.builder.responses(), "usage": usage}

    def record(self, error: InferqError | None = None, **results: Any) -> JobRecord:
        return JobRecord(
            job_id=self.job_id,
            kind=self.kind,
            status=status_of(error),
            model=self.model,
            engine=self.runner.settings.engine,
            worker=self.worker,
            host=socket.gethostname(),
            attempt=self.attempt,
            timings=self.timings.model_copy(update={"finished_at": time.time()}),
            error=ErrorInfo.of(error) if error is not None else None,
            **results,
        )


def status_of(error: InferqError | None) -> JobStatus:
    if error is None:
        return JobStatus.SUCCEEDED
    if isinstance(error, JobCancelled):
        return JobStatus.CANCELLED
    if isinstance(error, JobExpired):
        return JobStatus.EXPIRED
    if isinstance(error, JobTimeLimit):
        return JobStatus.TIMED_OUT
    return JobStatus.FAILED


def _light(job: ChatJob, payload_bytes: int) -> bool:
    """Whether preparing the job is light work: a small payload, no image to load, no grammar to compile."""
    media = job.images or job.videos or job.audios or any(message.media() for message in job.messages or ())
    constrained = job.params.response_format is not None or job.params.tool_choice is not None
    return payload_bytes <= INLINE_PREPARE_BYTES and not media and not constrained


def _payload(args: tuple, kwargs: dict, max_payload_bytes: int) -> tuple[Any, int]:
    """The job object and its size in bytes of JSON."""
    if kwargs or len(args) != 1:
        raise InvalidRequest("the task takes exactly one positional argument, the job object", field="payload")
    size = len(json.dumps(args[0]).encode())
    if size > max_payload_bytes:
        raise InvalidRequest(
            f"the job is {size} bytes of JSON; this worker takes at most {max_payload_bytes}", field="payload"
        )
    return args[0], size
