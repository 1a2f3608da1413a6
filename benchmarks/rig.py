"""Everything a bench run starts: a Redis of its own, worker processes, and engines loaded in-process.

Each is started the first time a part asks for it and stopped when the run ends, whatever happened.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from rich.console import Console

from benchmarks.config import EngineSpec
from benchmarks.noop_app import NOOP_QUEUE
from engines import BaseEngine, load_engine
from harness.embedded_redis import EmbeddedRedis
from harness.worker_process import WorkerProcess


class NoopWorker(WorkerProcess):
    """A plain `celery worker` serving the no-op task, flagged like `inferq worker` flags its Celery."""

    def __init__(self, redis_url: str, log_dir: Path, concurrency: int) -> None:
        super().__init__(redis_url, NOOP_QUEUE, "bench-noop", log_dir, concurrency=concurrency)
        self.command = [
            sys.executable, "-m", "celery", "-A", "benchmarks.noop_app", "worker",
            "--pool=threads", f"--concurrency={concurrency}", f"--hostname={self.hostname}",
            f"--queues={NOOP_QUEUE}", "--without-mingle", "--task-events", "--loglevel=INFO",
        ]  # fmt: skip


class Rig:
    def __init__(self, console: Console, redis_url: str | None) -> None:
        self.console = console
        self._given_url = redis_url
        self._embedded: EmbeddedRedis | None = None
        self.log_dir = Path(tempfile.mkdtemp(prefix="inferq-bench-"))
        self._workers: dict[str, WorkerProcess] = {}
        self._engines: dict[str, BaseEngine] = {}

    @property
    def redis_url(self) -> str:
        return self._given_url or self._embedded.url

    @property
    def redis_port(self) -> int:
        return int(self.redis_url.rsplit(":", 1)[1].split("/")[0])

    def start(self) -> None:
        if self._given_url is None:
            # A server of its own: nobody else's keys or load in the numbers, and nothing left behind.
            self._embedded = EmbeddedRedis()
            self._embedded.start()

    def worker(self, spec: EngineSpec, env: dict[str, str] | None = None) -> WorkerProcess:
        if spec.name in self._workers and env and any(self._workers[spec.name].env.get(k) != v for k, v in env.items()):
            raise ValueError(f"worker {spec.name} runs already, with another environment")
        if spec.name not in self._workers:
            worker = WorkerProcess(
                self.redis_url,
                spec.model,
                spec.name,
                self.log_dir,
                engine=spec.backend,
                concurrency=spec.concurrency,
                engine_args=spec.engine_args,
                env=env,
            )
            self.console.log(f"starting worker {spec.name} ({spec.backend}; logs in {self.log_dir})")
            self._workers[spec.name] = worker.start()
        return self._workers[spec.name]

    def noop_worker(self, concurrency: int) -> WorkerProcess:
        if NOOP_QUEUE not in self._workers:
            self.console.log("starting the bare Celery no-op worker")
            self._workers[NOOP_QUEUE] = NoopWorker(self.redis_url, self.log_dir, concurrency).start()
        return self._workers[NOOP_QUEUE]

    def stop_worker(self, spec: EngineSpec) -> None:
        worker = self._workers.pop(spec.name, None)
        if worker is not None:
            worker.stop()

    async def direct(self, spec: EngineSpec) -> BaseEngine:
        """The same engine the worker serves, loaded here and called without the queue."""
        if spec.name not in self._engines:
            self.console.log(f"loading the {spec.backend} engine in this process, for direct calls")
            # on this loop, not a thread: an engine binds to the loop it is built on
            self._engines[spec.name] = load_engine(spec.backend, spec.model, **spec.engine_args)
        return self._engines[spec.name]

    async def close_direct(self, spec: EngineSpec) -> None:
        engine = self._engines.pop(spec.name, None)
        if engine is not None:
            await engine.close()

    async def aclose(self) -> None:
        for engine in self._engines.values():
            await engine.close()
        self._engines.clear()

    def stop(self) -> None:
        for worker in self._workers.values():
            worker.stop()
        self._workers.clear()
        if self._embedded is not None:
            self._embedded.stop()
