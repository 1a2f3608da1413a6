"""The event-loop side of the HF engine: admits requests between steps and routes deltas to their callers.

All scheduling state lives on the event loop; the compute thread only ever sees the arguments of one
`Stepper.step` call. No thread spins when there is no work, and a caller that goes away is aborted at
the next step boundary.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

from engines.base import ChatRequest
from engines.errors import EngineDead, EngineError
from engines.hf.stepper import Stepper
from engines.schemas import Delta

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(
        self,
        stepper: Stepper,
        executor: ThreadPoolExecutor,
        translate_error: Callable[[BaseException], EngineError],
        max_batch_rows: int,
        max_prefill_tokens: int,
    ) -> None:
        self._stepper = stepper
        self._executor = executor
        self._translate_error = translate_error
        self._max_batch_rows = max_batch_rows
        self._max_prefill_tokens = max_prefill_tokens
        self._waiting: deque[ChatRequest] = deque()
        self._streams: dict[str, asyncio.Queue[Delta | EngineError]] = {}
        self._aborted: set[str] = set()
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._dead: EngineDead | None = None

    @property
    def num_inflight(self) -> int:
        return len(self._streams)

    async def generate(self, request: ChatRequest) -> AsyncIterator[Delta]:
        if self._dead is not None:
            raise self._dead
        loop = asyncio.get_running_loop()
        if self._event_loop is None:
            self._event_loop = loop
        elif loop is not self._event_loop:
            raise EngineError("an engine serves the event loop it first ran on; keep one loop per engine")
        if request.request_id in self._streams:
            raise EngineError(f"request id {request.request_id!r} is already running", field="request_id")
        stream: asyncio.Queue[Delta | EngineError] = asyncio.Queue()
        self._streams[request.request_id] = stream
        unfinished = request.params.n
        try:
            self._enqueue(request)
            if self._would_admit(request):
                # it joins at the next step: a step in flight over rows all less urgent stops for it
                self._stepper.preemption.request(request.priority)
            self._ensure_loop()
            self._wake.set()
            while unfinished:
                item = await stream.get()
                if isinstance(item, EngineError):
                    raise item
                if item.finish_reason is not None:
                    unfinished -= 1
                yield item
        finally:
            del self._streams[request.request_id]
            if unfinished:
                # The caller stopped early (closed the stream, was cancelled, or the step failed).
                self._abort(request.request_id)

    def _would_admit(self, request: ChatRequest) -> bool:
        """Whether the next step's `_admit` takes `request` (it heads the queue and fits): only then may it stop
        the step in flight, or one that can never be admitted beside the batch would stop every decode."""
        return (
            self._waiting[0] is request
            and self._stepper.num_rows + request.params.n <= self._max_batch_rows
            and request.prompt_length <= self._max_prefill_tokens
            and self._stepper.can_join(request.adapter)
        )

    def _enqueue(self, request: ChatRequest, *, first_of_its_priority: bool = False) -> None:
        """Waiting requests are taken most urgent first (lower priority value), then in arrival order; a
        request handed back by a stopped step goes before those of its priority that arrived after it."""
        for position, waiting in enumerate(self._waiting):
            if waiting.priority > request.priority or (first_of_its_priority and waiting.priority == request.priority):
                self._waiting.insert(position, request)
                return
        self._waiting.append(request)

    async def abort(self, request_id: str) -> None:
        if request_id in self._streams:
            self._abort(request_id)

    def _abort(self, request_id: str) -> None:
        queued = next((r for r in self._waiting if r.request_id == request_id), None)
        if queued is None:
            self._aborted.add(request_id)
            self._wake.set()
            return
        self._waiting.remove(queued)
        self._end_aborted(queued)

    def _end_aborted(self, request: ChatRequest) -> None:
        """A request aborted before any row of it ran: each of its answers ends empty, as `abort`."""
        stream = self._streams.get(request.request_id)
        for index in range(request.params.n if stream is not None else 0):
            stream.put_nowait(Delta(index, "", (), "abort"))

    async def close(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        self._dead = EngineDead("the engine was shut down")  # a later generate says so, not a stale executor's error
        self._fail_all(self._dead)

    def _ensure_loop(self) -> None:
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.get_running_loop().create_task(self._run(), name="inferq-hf-scheduler")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self._waiting and not self._stepper.num_rows:
                    self._aborted.clear()
                    await self._wake.wait()
                    self._wake.clear()
                    continue
                self._stepper.preemption.clear()  # whoever waits now is weighed by `_admit`
                admitted = self._admit()
                aborted, self._aborted = self._aborted, set()
                try:
                    outcome = await loop.run_in_executor(self._executor, self._stepper.step, admitted, aborted)
                except Exception as exc:
                    self._fail_step(self._translate_error(exc), admitted)
                    continue
                for request in reversed(outcome.deferred):
                    if request.request_id in self._aborted:  # aborted while its step ran: it never reaches a row
                        self._aborted.discard(request.request_id)
                        self._end_aborted(request)
                    elif request.request_id in self._streams:  # else its caller left meanwhile
                        self._enqueue(request, first_of_its_priority=True)
                for request_id, made in outcome.outputs:
                    if isinstance(made, EngineError):
                        log.warning("HF request %s failed alone: %s", request_id, made)
                    stream = self._streams.get(request_id)
                    if stream is not None:
                        stream.put_nowait(made)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug here must not leave callers waiting forever
            log.exception("HF scheduler stopped")
            self._dead = EngineDead(f"the scheduler stopped: {exc!r}")
            self._fail_all(self._dead)
            raise

    def _admit(self) -> list[ChatRequest]:
        """Takes waiting requests in their order (see `_enqueue`) while rows and the prefill budget allow, all
        as urgent as the first: a chat's prefill is not widened by the batch lines queued behind it. The budget
        counts the padded prefill (each request is padded to the longest), which is what the forward computes."""
        admitted: list[ChatRequest] = []
        rows = self._stepper.num_rows
        longest = 0
        while self._waiting:
            request = self._waiting[0]
            if admitted and request.priority > admitted[0].priority:
                break
            fits = rows + request.params.n <= self._max_batch_rows
            padded = (len(admitted) + 1) * max(longest, request.prompt_length)
            fits = fits and padded <= self._max_prefill_tokens
            if not fits and (admitted or rows):
                break  # an oversized request still runs, alone, once the batch has drained
            if not self._stepper.can_join(request.adapter):
                break
            admitted.append(self._waiting.popleft())
            rows += request.params.n
            longest = max(longest, request.prompt_length)
        return admitted

    def _fail_step(self, error: EngineError, admitted: list[ChatRequest]) -> None:
        log.error("HF step failed: %s", error)
        failed = self._stepper.request_ids() | {request.request_id for request in admitted}
        self._stepper.reset()
        for request_id in failed:
            stream = self._streams.get(request_id)
            if stream is not None:
                stream.put_nowait(error)
        if isinstance(error, EngineDead):
            self._dead = error
            self._fail_all(error)

    def _fail_all(self, error: EngineError) -> None:
        self._waiting.clear()
        for stream in self._streams.values():
            stream.put_nowait(error)
