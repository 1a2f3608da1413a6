"""The async client: what a web backend (FastAPI, aiohttp...) uses to enqueue jobs and read their tokens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from redis.asyncio import Redis

from engines.schemas import Message, Response
from tasks import names
from engines.errors import InvalidRequest
from tasks.app import PRIORITY_STEPS, make_app
from tasks.config import QueueSettings
from tasks.schemas import ChatJob, ScoreJob, WorkerInfo
from tasks.store import JobStore
from api_client.handle import AsyncJobHandle
from api_client.jobs import chat_job, meta_of, new_job_id, score_job


class AsyncInferQClient:
    """Mirrors LLaMA-Factory's ChatModel (`achat`, `astream_chat`, `aget_scores`) over the queue.

    The convenience methods cancel their job when the caller stops waiting (a timeout, a cancelled
    task, a stream closed early): nobody is left to read the answer. `submit_*` hands out the job
    instead, to wait for, stream, or cancel at will.
    """

    def __init__(self, redis_url: str | None = None, *, model: str | None = None) -> None:
        self.settings = QueueSettings(**({"redis_url": redis_url} if redis_url else {}))
        self.model = model
        self.store = JobStore(Redis.from_url(self.settings.redis_url, decode_responses=True), self.settings)
        self._celery = make_app(self.settings)

    async def __aenter__(self) -> AsyncInferQClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.store.redis.aclose()
        self._celery.close()

    async def submit_chat(
        self,
        messages: Sequence[Message | dict[str, Any]],
        model: str | None = None,
        *,
        priority: int | None = None,
        **options: Any,
    ) -> AsyncJobHandle:
        """Enqueues a chat job. Options: system, tools, images, videos, audios, adapter, stream (default
        True), deadline_s, and any GenerationParams field (temperature, max_new_tokens, stop, n, ...)."""
        return await self._submit(chat_job(messages, model or self.model, **options), priority)

    async def submit_score(
        self,
        texts: Sequence[str],
        model: str | None = None,
        *,
        max_length: int | None = None,
        deadline_s: float | None = None,
        priority: int | None = None,
    ) -> AsyncJobHandle:
        job = score_job(texts, model or self.model, max_length=max_length, deadline_s=deadline_s)
        return await self._submit(job, priority)

    async def find_job(self, job_id: str) -> AsyncJobHandle | None:
        """A handle to a job submitted elsewhere (another process), while its record is kept."""
        meta = await self.store.meta(job_id)
        return None if meta is None else AsyncJobHandle(self, meta)

    async def achat(
        self,
        messages: Sequence[Message | dict[str, Any]],
        model: str | None = None,
        *,
        timeout: float | None = None,
        **options: Any,
    ) -> list[Response]:
        handle = await self.submit_chat(messages, model, stream=False, **options)
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
        handle = await self.submit_chat(messages, model, stream=True, **options)
        finished = False
        try:
            async with asyncio.timeout(timeout):
                async for piece in handle.stream():
                    yield piece
            finished = True
        finally:
            if not finished:
                await asyncio.shield(handle.cancel())

    async def aget_scores(
        self, texts: Sequence[str], model: str | None = None, *, timeout: float | None = None, **options: Any
    ) -> list[float]:
        handle = await self.submit_score(texts, model, **options)
        record = await _result_or_cancel(handle, timeout)
        return record.scores

    async def workers(self) -> list[WorkerInfo]:
        """The live workers (each re-announces itself every few seconds)."""
        keys = [key async for key in self.store.redis.scan_iter(match=names.WORKER_KEY_PATTERN, count=100)]
        raw = await self.store.redis.mget(keys) if keys else []
        return [WorkerInfo.model_validate_json(value) for value in raw if value]

    async def _submit(self, job: ChatJob | ScoreJob, priority: int | None) -> AsyncJobHandle:
        if priority is not None and priority not in PRIORITY_STEPS:
            raise InvalidRequest("must be 0 (highest) to 9 (lowest)", field="priority")
        job_id = new_job_id()
        meta = meta_of(job_id, job)
        await self.store.save_meta(meta)
        await asyncio.to_thread(
            self._celery.send_task,
            names.CHAT_TASK if job.kind == "chat" else names.SCORE_TASK,
            args=[job.model_dump(mode="json", exclude_none=True)],
            task_id=job_id,
            queue=names.queue_for_model(job.model),
            priority=priority,
        )
        return AsyncJobHandle(self, meta)


async def _result_or_cancel(handle: AsyncJobHandle, timeout: float | None):
    try:
        return await handle.result(timeout)
    except (asyncio.CancelledError, TimeoutError):
        await asyncio.shield(handle.cancel())
        raise
