"""The sync client: the async client run on a background loop. No method body here does real work."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from api_client.async_client import AsyncInferQClient
from api_client.handle import AsyncJobHandle
from api_client.loop_thread import CLOSE_WAIT_S, LoopThread
from engines.schemas import Message, Response
from tasks.batch_store import BatchInfo
from tasks.config import QueueSettings
from tasks.schemas import JobMeta, JobRecord, QueueInfo, WorkerInfo


class JobHandle:
    """The sync face of an `AsyncJobHandle`. It keeps its client alive: a client no one else holds must not close
    its loop under a handle (or a stream) still in use."""

    def __init__(self, handle: AsyncJobHandle, client: InferQClient) -> None:
        self._handle = handle
        self._client = client
        self._loop = client._loop

    @property
    def id(self) -> str:
        return self._handle.id

    @property
    def meta(self) -> JobMeta:
        """What was known at submit time: model, kind, deadline, owner."""
        return self._handle.meta

    def __repr__(self) -> str:
        return repr(self._handle).replace("AsyncJobHandle", "JobHandle")

    def result(self, timeout: float | None = None) -> JobRecord:
        return self._loop.run(self._handle.result(timeout))

    def stream(self, index: int = 0, timeout: float | None = None) -> Iterator[str]:
        yield from self._loop.iterate(self._handle.stream(index, timeout))  # a generator holds its handle

    def events(self, timeout: float | None = None) -> Iterator[Any]:
        yield from self._loop.iterate(self._handle.events(timeout))

    def cancel(self) -> None:
        self._loop.run(self._handle.cancel())

    def record(self) -> JobRecord | None:
        return self._loop.run(self._handle.record())


class InferQClient:
    """LLaMA-Factory's ChatModel surface over the queue: `chat`/`achat`, `stream_chat`/`astream_chat`,
    `get_scores`/`aget_scores`, plus `submit_chat`/`submit_score` for job handles."""

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        model: str | None = None,
        owner: str | None = None,
        settings: QueueSettings | None = None,
    ) -> None:
        self._loop = LoopThread()
        try:
            self._client: AsyncInferQClient = self._loop.run(_make_client(redis_url, model, owner, settings))
        except BaseException:  # a bad URL, say: no loop thread is left behind
            self._loop.close()
            raise
        # Also at interpreter exit (weakref.finalize runs then), while the loop's thread still runs:
        # a script that never closes its client, or leaves a stream open, still exits.
        self._closer = weakref.finalize(self, _close, self._loop, self._client)

    def __enter__(self) -> InferQClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._closer()

    def chat(
        self, messages: Sequence[Message | dict[str, Any]], model: str | None = None, **options: Any
    ) -> list[Response]:
        return self._loop.run(self._client.achat(messages, model, **options))

    async def achat(
        self, messages: Sequence[Message | dict[str, Any]], model: str | None = None, **options: Any
    ) -> list[Response]:
        return await self._loop.run_async(self._client.achat(messages, model, **options))

    # The streams are generators of this class: each holds the client while it is read (`for piece in
    # InferQClient().stream_chat(...)` would otherwise have its loop closed under it at once).
    def stream_chat(
        self, messages: Sequence[Message | dict[str, Any]], model: str | None = None, **options: Any
    ) -> Iterator[str]:
        yield from self._loop.iterate(self._client.astream_chat(messages, model, **options))

    async def astream_chat(
        self, messages: Sequence[Message | dict[str, Any]], model: str | None = None, **options: Any
    ) -> AsyncIterator[str]:
        stream = self._loop.aiterate(self._client.astream_chat(messages, model, **options))
        try:
            async for piece in stream:
                yield piece
        finally:
            await stream.aclose()  # now, not when collected: closing it cancels the job

    def get_scores(self, texts: Sequence[str] | None = None, model: str | None = None, **options: Any) -> list[float]:
        return self._loop.run(self._client.aget_scores(texts, model, **options))

    async def aget_scores(
        self, texts: Sequence[str] | None = None, model: str | None = None, **options: Any
    ) -> list[float]:
        return await self._loop.run_async(self._client.aget_scores(texts, model, **options))

    def submit_chat(
        self, messages: Sequence[Message | dict[str, Any]], model: str | None = None, **options: Any
    ) -> JobHandle:
        return JobHandle(self._loop.run(self._client.submit_chat(messages, model, **options)), self)

    def submit_completion(self, prompt: str, model: str | None = None, **options: Any) -> JobHandle:
        return JobHandle(self._loop.run(self._client.submit_completion(prompt, model, **options)), self)

    def submit_score(self, texts: Sequence[str] | None = None, model: str | None = None, **options: Any) -> JobHandle:
        return JobHandle(self._loop.run(self._client.submit_score(texts, model, **options)), self)

    def find_job(self, job_id: str) -> JobHandle | None:
        handle = self._loop.run(self._client.find_job(job_id))
        return None if handle is None else JobHandle(handle, self)

    def workers(self) -> list[WorkerInfo]:
        return self._loop.run(self._client.workers())

    def queues(self) -> list[QueueInfo]:
        return self._loop.run(self._client.queues())

    def batches(self) -> list[BatchInfo]:
        return self._loop.run(self._client.batches())


def _close(loop: LoopThread, client: AsyncInferQClient) -> None:
    with contextlib.suppress(Exception):  # at exit, a Redis that is already gone must not stop the rest
        loop.run(client.aclose(), timeout=CLOSE_WAIT_S)
    loop.close()


async def _make_client(
    redis_url: str | None, model: str | None, owner: str | None, settings: QueueSettings | None
) -> AsyncInferQClient:
    # Built on the background loop: redis.asyncio binds its connections to the loop that first uses them.
    return AsyncInferQClient(redis_url, model=model, owner=owner, settings=settings)
