"""The worker's one engine on its one event loop, and the Redis plumbing around it.

Celery's threads hand jobs over with `call()`; every job of the process runs as a coroutine on this
loop, so they all reach the same engine concurrently and its batching can work.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from redis.exceptions import RedisError

from engines import BaseEngine, load_engine
from tasks.hub import RESYNC
from tasks.schemas import WorkerInfo
from tasks.store import JobStore
from worker.metrics import WorkerMetrics
from worker.publisher import EventWriter
from worker.recent_cancels import RecentCancels
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)
T = TypeVar("T")


class NodeNameTaken(RuntimeError):
    """Another live worker announces this worker's node name."""


@dataclass
class RunningJob:
    """A job this worker runs now, and how to stop it: abort its engine request (chat) or its task (score)."""

    job_id: str
    abort: Callable[[], Awaitable[None]]
    cancelled: bool = field(default=False)
    handed_back: bool = field(default=False)  # stopped by a shutdown whose grace ran out: back to the queue
    stopped: bool = field(default=False)  # aborted for any reason (cancel, lost lease, shutdown): abort only once

    async def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            try:
                await self.abort()
            except BaseException:
                self.stopped = False  # a failed abort is tried again by the next stop (a shutdown's, say)
                raise


class EngineRunner:
    def __init__(self, settings: WorkerSettings, hostname: str) -> None:
        self.settings = settings
        self.hostname = hostname
        self.loop = asyncio.new_event_loop()
        self.engine: BaseEngine | None = None
        self.store: JobStore | None = None
        self.events: EventWriter | None = None  # every job's streamed events, written together
        self.announced = False  # in the registry: this worker's entry is its own to retire
        self.running: dict[str, RunningJob] = {}
        self._recent_cancels = RecentCancels()
        self.started_at = time.time()
        self._thread = threading.Thread(target=self.loop.run_forever, name="inferq-engine-loop", daemon=True)
        self._background: list[asyncio.Task[None]] = []
        self._aborting: set[asyncio.Task[None]] = set()  # a shutdown's aborts, held until they end (and logged)
        # Templating and tokenizing a prompt (megabytes of it, at worst) must not stall the loop that
        # renews leases, heartbeats and hears cancels: a thread of its own. The lock keeps the tokenizer to
        # one thread at a time (tokenizers are not shared safely), for the small requests done inline too.
        self.preparer = ThreadPoolExecutor(1, thread_name_prefix="inferq-prepare")
        self._preparing = threading.Lock()
        self.metrics = WorkerMetrics(self.served_name, settings.engine)
        self.slots = 0  # jobs admitted at once: known once the engine has loaded
        self.handing_back = False  # the shutdown grace ran out: no job runs here any more
        self.metrics.in_flight.set_function(lambda: len(self.running))

    @property
    def served_name(self) -> str:
        assert self.settings.name is not None  # WorkerSettings fills it in
        return self.settings.name

    def start(self) -> None:
        """Loads the engine (blocking) and starts listening for cancels and announcing the worker."""
        self._thread.start()
        self.call(self._start())

    async def prepare(self, work: Callable[[], T], small: bool) -> T:
        """Runs `work` (templating, tokenizing) on the preparing thread; a small request's work (a few hundred
        microseconds, less than the two thread switches cost) runs inline instead when nothing else is being
        prepared."""
        if small and self._preparing.acquire(blocking=False):
            try:
                return work()
            finally:
                self._preparing.release()

        def locked() -> T:
            with self._preparing:
                return work()

        return await asyncio.get_running_loop().run_in_executor(self.preparer, locked)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Runs a coroutine on the engine loop and waits for it, from any other thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def hand_back_running_jobs(self, timeout_s: float) -> int:
        """From another thread, when the shutdown grace ran out: stops every running job in its engine, and
        each goes back to the queue unrecorded (worker/jobs.py). Returns how many."""
        return self.call(self._hand_back(), timeout=timeout_s)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            self.call(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=30)

    async def _start(self) -> None:
        settings = self.settings
        self.store = JobStore.open(settings, client_name=f"inferq-worker:{self.hostname}")
        await self.store.ping()
        # Before the engine loads: a twin must not load a second engine onto the live worker's GPUs.
        await self._refuse_a_twin()
        # Built on this loop: engines bind their async machinery to the loop they are created on.
        media = {"media_remote_urls": settings.media_remote_urls, "media_local_paths": settings.media_local_paths}
        self.engine = load_engine(settings.engine, settings.model, **{**media, **settings.engine_args})
        self.slots = settings.concurrency or self.engine.capacity
        if self.slots > self.engine.capacity:
            log.warning(
                "--concurrency %d is above the engine's capacity %d: the rest wait inside this engine, "
                "where no other worker can take them",
                self.slots,
                self.engine.capacity,
            )
        self.metrics.capacity.set(self.slots)
        self.events = EventWriter(self.store, settings.redis_outage_s)
        if settings.metrics_port is not None:
            self.metrics.serve(settings.metrics_port)
        await self._announce()
        self.announced = True
        self._background = [
            asyncio.create_task(self._listen_for_cancels(), name="inferq-cancels"),
            asyncio.create_task(self._heartbeat(), name="inferq-heartbeat"),
        ]

    async def _stop(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.events is not None:
            await self.events.aclose()
        if self.store is not None:
            if self.announced:  # a twin refused at start must not retire the live worker's entry
                await self.store.retire(self.hostname)
            await self.store.aclose()
        self.preparer.shutdown(wait=False)
        if self.engine is not None:
            await self.engine.close()

    def describe_tasks(self) -> str:
        """Every task on the engine loop and the chain of awaits it is suspended in, innermost last: for the
        log of a worker that cannot stop. Read from another thread, as a last word, so best effort."""
        try:
            tasks = list(asyncio.all_tasks(self.loop))
        except RuntimeError:  # the set changed while it was read
            return "  (could not list the tasks)"
        lines = []
        for task in tasks:
            where = " -> ".join(f"{frame.f_code.co_name}:{frame.f_lineno}" for frame in _await_chain(task.get_coro()))
            lines.append(f"  {task.get_name()}: {where or 'done'}")
        return "\n".join(lines) or "  (no task)"

    async def _hand_back(self) -> int:
        self.handing_back = True
        jobs = list(self.running.values())
        for job in jobs:
            job.handed_back = True
            aborting = asyncio.ensure_future(job.stop())  # not awaited: an engine slow to abort holds up no other job
            self._aborting.add(aborting)  # the loop keeps only a weak reference to a task
            aborting.add_done_callback(self._aborted)
        return len(jobs)

    def _aborted(self, aborting: asyncio.Task[None]) -> None:
        self._aborting.discard(aborting)
        if not aborting.cancelled() and aborting.exception() is not None:
            # its job goes on in the engine until the worker's forced exit
            log.error("a handed-back job's abort failed", exc_info=aborting.exception())

    def heard_cancel(self, job_id: str) -> bool:
        """Whether the listener heard a cancel of this job lately (before it registered, say)."""
        return job_id in self._recent_cancels

    async def cancel(self, job_id: str) -> None:
        self._recent_cancels.note(job_id)
        job = self.running.get(job_id)
        if job is None or job.cancelled:
            return
        job.cancelled = True
        log.info("cancelling job %s", job_id)
        await job.stop()

    async def _listen_for_cancels(self) -> None:
        """Cancels arrive on one channel; after the subscriber reconnects (RESYNC), cancels published
        while it was away are found through the running jobs' cancel marks."""
        follower = await self.store.follow_cancels()
        while True:
            message = await follower.get(timeout=None)
            if message is RESYNC:
                try:
                    marked = await self.store.cancels_requested(list(self.running))
                except RedisError as error:
                    log.warning("could not read cancel marks (%s); trying again", error)
                    await asyncio.sleep(1)
                    follower.queue.put_nowait(RESYNC)
                    continue
                for job_id in marked:
                    await self._cancel_or_log(job_id)
            else:
                await self._cancel_or_log(message)

    async def _cancel_or_log(self, job_id: str) -> None:
        # One engine's abort failing must not end the listener: every later cancel would go unheard.
        try:
            await self.cancel(job_id)
        except Exception:
            log.exception("cancelling job %s failed; its lease or time limit still ends it", job_id)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            try:
                await self._announce()
            except Exception as error:  # whatever went wrong, the next beat tries again
                log.warning("heartbeat failed: %s", error)

    async def _refuse_a_twin(self) -> None:
        """Two live workers with one node name would share one registry entry (one would be invisible)
        and confuse Celery's events; the second is refused. A name left by a dead worker is taken over."""
        twin = await self.store.worker(self.hostname)
        if twin is None or twin.pid == os.getpid() or twin.host != socket.gethostname() or not _alive(twin.pid):
            return
        # An exception, not SystemExit: Celery stops with exit code 1 and logs it ("Unrecoverable error").
        raise NodeNameTaken(
            f"inferq worker: a live worker (pid {twin.pid}) already uses the node name {self.hostname!r}; "
            "give this one another --hostname (or --gpus, which names it)"
        )

    async def _announce(self) -> None:
        info = WorkerInfo(
            hostname=self.hostname,
            model=self.served_name,
            engine=self.settings.engine,
            model_path=str(getattr(self.engine, "model_path", self.settings.model)),
            can_generate=self.engine.can_generate,
            adapters=sorted(self.engine.adapters),
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=self.started_at,
            concurrency=self.slots,
            num_running=len(self.running),
            gpus=self.settings.gpus,
            max_queued=self.settings.max_queued,
            context_length=self.engine.context_length,
        )
        await self.store.announce(info, ttl_s=max(3 * self.settings.heartbeat_s, 2))
        if self.settings.metrics_port is not None:
            self.metrics.queue_depth.set((await self.store.queues.info(self.served_name)).depth)


def _await_chain(awaitable: Any) -> list[Any]:
    """The frames of a suspended coroutine and of what it awaits, down to the innermost."""
    frames = []
    while awaitable is not None:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "ag_frame", None)
        if frame is not None:
            frames.append(frame)
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "ag_await", None)
    return frames


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is someone else's
    return True
