"""The async client: what a web backend (FastAPI, aiohttp...) uses to enqueue jobs and read their tokens.

One client holds a few Redis connections whatever its load: a small blocking pool for commands, one
shared subscriber for every job it follows (tasks/hub.py), and a small producer pool for Celery.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextvars import ContextVar
from typing import Any

from api_client.handle import AsyncJobHandle
from api_client.jobs import (
    chat_job,
    checked_tags,
    completion_job,
    encode_job,
    idempotent_job_id,
    meta_of,
    new_job_id,
    request_digest,
    score_job,
)
from engines.errors import InvalidRequest
from engines.schemas import Message, Response
from tasks import names
from tasks.app import DEFAULT_PRIORITY, PRIORITY_STEPS, broker_priority, job_queue, make_app
from tasks.batch_store import BatchInfo
from tasks.broker import RedisCommand, riding_with_the_message
from tasks.config import QueueSettings
from tasks.errors import ClientClosed, QueueFull, QuotaExceeded
from tasks.schemas import ChatJob, JobMeta, OwnerQuota, QueueInfo, ScoreJob, WorkerInfo
from tasks.store import JobStore

# Celery's send_task blocks on the broker: one thread does it, with one producer (two Redis sockets:
# kombu's connection and its channel). More threads did not submit faster on a 2-core machine.
SEND_THREADS = 1
# A retry waiting for an idempotent submit's first try to send (within the settings' `send_grace_s`, or it died
# trying: then one retry sends it) looks every SENT_POLL_S.
SENT_POLL_S = 0.05
# Set while a convenience call (achat, astream_chat, aget_scores) submits the job it owns: cancelled before it
# held the handle, once the message went out, the call cancels the job too, instead of leaving it to run for
# nobody (a caller's timeout, Ctrl-C in the sync client).
_CALL_OWNS_ITS_JOB: ContextVar[bool] = ContextVar("inferq_call_owns_its_job", default=False)


class AsyncInferQClient:
    """Mirrors LLaMA-Factory's ChatModel (`achat`, `astream_chat`, `aget_scores`) over the queue.

    The convenience methods cancel their job when the caller stops waiting (a timeout, a cancelled
    task, a stream closed early): nobody is left to read the answer. `submit_*` hands out the job
    instead, to wait for, stream, or cancel at will.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        model: str | None = None,
        owner: str | None = None,
        settings: QueueSettings | None = None,
    ) -> None:
        """`settings` defaults to the INFERQ_* environment; `redis_url` overrides its URL. `owner` is written
        into every job's meta (a submit may name another); the gateway's tenants are owners."""
        settings = settings or QueueSettings()
        self.settings = settings.model_copy(update={"redis_url": redis_url}) if redis_url else settings
        self.model = model
        self.owner = owner
        self.store = JobStore.open(self.settings)
        self._celery = make_app(self.settings, broker_pool_limit=SEND_THREADS)
        self._senders = concurrent.futures.ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="inferq-send")

    async def __aenter__(self) -> AsyncInferQClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.store.aclose()
        self._senders.shutdown(wait=False)
        self._celery.close()

    async def submit_chat(
        self,
        messages: Sequence[Message | dict[str, Any]],
        model: str | None = None,
        *,
        priority: int | None = None,
        owner: str | None = None,
        quota: OwnerQuota | None = None,
        echo: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        tags: dict[str, str] | None = None,
        **options: Any,
    ) -> AsyncJobHandle:
        """Enqueues a chat job. Options: system, tools, images, videos, audios, adapter, stream (default
        True), deadline_s, and any GenerationParams field (temperature, max_new_tokens, stop, n, tool_choice,
        response_format, logprobs...). With a `quota`, the job is refused (QuotaExceeded) when its owner already
        has that many in flight; `echo` is kept in the job's meta for whoever answers for it later. The same
        `idempotency_key` (per owner) while the job's record is kept is the same job: a retry gets its handle,
        and the job runs once. `tags` ({name: text}, a few short ones) are what Flower shows of the job
        and finds it by (`kwargs:name=text` in its search); a batch's lines carry their batch and custom_id."""
        job = chat_job(messages, model or self.model, **options)
        return await self._submit(job, priority, owner, quota, echo, idempotency_key, tags)

    async def submit_completion(
        self,
        prompt: str,
        model: str | None = None,
        *,
        priority: int | None = None,
        owner: str | None = None,
        quota: OwnerQuota | None = None,
        idempotency_key: str | None = None,
        tags: dict[str, str] | None = None,
        **options: Any,
    ) -> AsyncJobHandle:
        """Enqueues a raw-prompt completion (no chat template): options as `submit_chat`'s, less the chat's."""
        job = completion_job(prompt, model or self.model, **options)
        return await self._submit(job, priority, owner, quota, idempotency_key=idempotency_key, tags=tags)

    async def submit_score(
        self,
        texts: Sequence[str] | None = None,
        model: str | None = None,
        *,
        conversations: Sequence[Sequence[Message | dict[str, Any]]] | None = None,
        max_length: int | None = None,
        deadline_s: float | None = None,
        max_runtime_s: float | None = None,
        priority: int | None = None,
        owner: str | None = None,
        quota: OwnerQuota | None = None,
        idempotency_key: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> AsyncJobHandle:
        """Scores texts as they are, or `conversations` (lists of messages, the answer last) rendered by the
        worker with the model's own chat template — what a reward model was trained to score. `tags` as
        `submit_chat`'s."""
        job = score_job(
            texts,
            model or self.model,
            conversations=conversations,
            max_length=max_length,
            deadline_s=deadline_s,
            max_runtime_s=max_runtime_s,
        )
        return await self._submit(job, priority, owner, quota, idempotency_key=idempotency_key, tags=tags)

    async def find_job(self, job_id: str) -> AsyncJobHandle | None:
        """A handle to a job submitted elsewhere (another process), while its record is kept."""
        meta = await self.store.meta(job_id)
        return None if meta is None else AsyncJobHandle(self.store, meta)

    async def achat(
        self,
        messages: Sequence[Message | dict[str, Any]],
        model: str | None = None,
        *,
        timeout: float | None = None,
        **options: Any,
    ) -> list[Response]:
        handle = await _owned(self.submit_chat(messages, model, stream=False, **options))
        record = await _result_or_cancel(handle, timeout)
        return record.responses

    async def astream_chat(
        self,
        messages: Sequence[Message | dict[str, Any]],
        model: str | None = None,
        *,
        timeout: float | None = None,
        **options: Any,
    ) -> AsyncIterator[str]:
        handle = await _owned(self.submit_chat(messages, model, stream=True, **options))
        finished = False
        try:
            async for piece in handle.stream(timeout=timeout):
                yield piece
            finished = True
        except ClientClosed:
            finished = True  # the client's Redis is going: the job goes on, as ClientClosed says
            raise
        finally:
            if not finished:
                await asyncio.shield(handle.cancel())

    async def aget_scores(
        self,
        texts: Sequence[str] | None = None,
        model: str | None = None,
        *,
        timeout: float | None = None,
        batch_input: Sequence[str] | None = None,
        **options: Any,
    ) -> list[float]:
        """`batch_input`: LLaMA-Factory's name for `texts` (its ChatModel.get_scores(batch_input)), either one."""
        if batch_input is not None:
            if texts is not None:
                raise InvalidRequest("give the texts once, as texts or as batch_input", field="batch_input")
            texts = batch_input
        handle = await _owned(self.submit_score(texts, model, **options))
        record = await _result_or_cancel(handle, timeout)
        return record.scores

    async def workers(self) -> list[WorkerInfo]:
        """The live workers (each re-announces itself every few seconds)."""
        return await self.store.workers()

    async def queues(self) -> list[QueueInfo]:
        """Each model's queue: the models live workers serve, and any other that has jobs waiting."""
        models = {info.model for info in await self.store.workers()} | await self.store.queues.models()
        return [await self.store.queues.info(model) for model in sorted(models)]

    async def batches(self) -> list[BatchInfo]:
        """The gateway Batch API's batches not ended yet, with their progress."""
        return await self.store.batches.running()

    async def _submit(
        self,
        job: ChatJob | ScoreJob,
        priority: int | None,
        owner: str | None,
        quota: OwnerQuota | None,
        echo: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> AsyncJobHandle:
        if priority is not None and (isinstance(priority, bool) or priority not in PRIORITY_STEPS):
            raise InvalidRequest("must be an integer from 0 (highest) to 9 (lowest)", field="priority")
        owner = owner or self.owner
        if quota is not None and quota.limits_anything and owner is None:
            raise InvalidRequest("a quota counts an owner's jobs: name the owner", field="owner")
        payload = encode_job(job, self.settings.max_payload_bytes)
        tags = checked_tags(tags)
        riders = None
        if idempotency_key is None:
            meta = meta_of(new_job_id(), job, owner, echo, tags=tags)
            counted = quota is not None and quota.limits_anything  # a quota counts jobs by their saved meta
            if counted or self.settings.uses_amqp:
                await self.store.save_meta(meta)
            else:  # on the Redis broker the meta rides in the push of the job's message
                riders = self.store.meta_riding_with_the_message(meta)
        else:
            meta = meta_of(idempotent_job_id(owner, idempotency_key), job, owner, echo, request_digest(job), tags)
            while (earlier := await self.store.claim_meta(meta)) is not None:
                if (retried := await self._retried(earlier, meta, payload, priority)) is not None:
                    return retried
                # its first try was refused meanwhile (a quota, a full queue): this one claims the key anew
        sending = None
        try:
            # after the claim: a retry of a job already queued gets its handle even when the queue is full
            await self._check_capacity(job.model)
            if quota is not None and quota.limits_anything:
                await self._admit(meta, quota)
            sending = self._start_send(meta, payload, priority, riders)
            if not await _sent(sending):
                await self.store.save_meta(meta)  # a push that carried no riders: no worker needs it to run
            if idempotency_key is not None:
                await self.store.mark_sent(meta.job_id)
            await self.store.confirm_submitted(meta.job_id)
        except BaseException:
            if sending is not None and _went_out(sending):
                # Cancelled (or failed) once its message went out, even as it was marked sent: the job exists and
                # runs; it keeps its meta (and its place in its owner's quota), and a retry with its key finds it
                # sent instead of sending it again after the grace.
                if idempotency_key is not None:
                    await asyncio.shield(self.store.mark_sent(meta.job_id))
                if _CALL_OWNS_ITS_JOB.get():  # and nobody will hold its handle: it stops
                    await asyncio.shield(AsyncJobHandle(self.store, meta).cancel())
            else:
                # Never queued: the job does not exist (nor counts against its owner's quota).
                await asyncio.shield(self.store.forget_meta(meta.job_id))
            raise
        return AsyncJobHandle(self.store, meta, just_submitted=True)

    async def _retried(
        self, earlier: JobMeta, meta: JobMeta, payload: dict[str, Any], priority: int | None
    ) -> AsyncJobHandle | None:
        """A submit under a key that already made a job: that job's handle, sending nothing. Only a first try
        that died between saving the meta and sending (nothing sent `send_grace_s` after its submit) has its
        message sent again, by one retry. A first try still on its way (its quota, its queue's cap) is waited
        for; None if it was refused meanwhile (its meta is gone), so that this submit makes the job itself,
        under the same checks. A retry never queues a second copy of a job, nor one past its owner's quota."""
        if earlier.request_digest != meta.request_digest:
            raise InvalidRequest(
                "this key was used for another request: a retry must ask the same", field="idempotency_key"
            )
        while (state := await self.store.submit_state(earlier.job_id)) == "unsent":
            if time.time() >= earlier.queued_at + self.settings.send_grace_s:
                if await self.store.claim_resend(earlier.job_id):
                    await self._resend(earlier, payload, priority)
                break
            await asyncio.sleep(SENT_POLL_S)
        return None if state == "gone" else AsyncJobHandle(self.store, earlier)

    async def _resend(self, meta: JobMeta, payload: dict[str, Any], priority: int | None) -> None:
        """Sends a dead first try's message, under the resend claim; a resend that did not go out gives the
        claim back, or no later retry could send the job and its waiters would wait for nothing."""
        sending = None
        try:
            sending = self._start_send(meta, payload, priority)
            await _sent(sending)
        except BaseException:
            if sending is None or not _went_out(sending):
                await asyncio.shield(self.store.release_resend(meta.job_id))
                raise
            await asyncio.shield(self.store.mark_sent(meta.job_id))
            raise
        await self.store.mark_sent(meta.job_id)

    def _start_send(
        self, meta: JobMeta, payload: dict[str, Any], priority: int | None, riders: list[RedisCommand] | None = None
    ) -> concurrent.futures.Future[bool]:
        """Sends the job's message on the sender thread; the future says whether `riders` went with it."""

        def send() -> bool:
            with riding_with_the_message(riders or []) as carried:
                self._celery.send_task(
                    names.CHAT_TASK if meta.kind == "chat" else names.SCORE_TASK,
                    args=[payload],
                    task_id=meta.job_id,
                    queue=job_queue(self.settings, meta.model),
                    # always explicit: kombu's Redis transport would run a message without one at the top priority
                    priority=broker_priority(self.settings, DEFAULT_PRIORITY if priority is None else priority),
                    # what Flower and the event stream show instead of the prompt; the tags read as kwargs there
                    argsrepr=f"<{meta.kind} job for {meta.model}>",
                    kwargsrepr=repr(meta.tags or {}),
                )
            return carried.carried or not riders

        return self._senders.submit(send)

    async def _admit(self, meta: JobMeta, quota: OwnerQuota) -> None:
        verdict = await self.store.admit_owned(meta, quota)
        if verdict == "in_flight":
            held = f"{quota.max_jobs} jobs queued or running"
        elif verdict == "queued":
            held = f"{quota.max_queued} jobs waiting to start"
        else:
            return
        raise QuotaExceeded(f"{meta.owner!r} has {held}, its quota; try again later", field="owner")

    async def _check_capacity(self, model: str) -> None:
        """Backpressure: a queue at the cap its workers announce refuses the job instead of growing."""
        cap = await self.store.fleet.queue_cap(model)
        if cap is None:
            return
        depth = (await self.store.queues.info(model)).depth
        if depth >= cap:
            raise QueueFull(
                f"model {model!r} has {depth} jobs queued, its cap is {cap}; try again later", field="model"
            )


async def _sent(sending: concurrent.futures.Future[bool]) -> bool:
    """Waits for a message to go out; its send's answer. Cancelled meanwhile, a send not started yet is
    dropped; one under way cannot be stopped (its thread runs it to the end), so it is waited for before the
    cancel goes on: the caller's cleanup must know whether the job was queued."""
    try:
        return await asyncio.wrap_future(sending)  # cancelling this cancels a send not started yet
    except asyncio.CancelledError:
        while not sending.done():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.shield(asyncio.wrap_future(sending))
        raise


async def _owned(submitting: Awaitable[AsyncJobHandle]) -> AsyncJobHandle:
    """The handle of a job the calling convenience method owns (see _CALL_OWNS_ITS_JOB)."""
    owns = _CALL_OWNS_ITS_JOB.set(True)
    try:
        return await submitting
    finally:
        _CALL_OWNS_ITS_JOB.reset(owns)


def _went_out(sending: concurrent.futures.Future) -> bool:
    return sending.done() and not sending.cancelled() and sending.exception() is None


async def _result_or_cancel(handle: AsyncJobHandle, timeout: float | None):
    try:
        return await handle.result(timeout)
    except (asyncio.CancelledError, TimeoutError):
        await asyncio.shield(handle.cancel())
        raise
