"""The fault suite's bench: a Redis of its own (append-only), echo workers on it, and a tally of what
became of every job, printed at the end of the run:

    <scenario>: sent N | succeeded N | failed with a clear error N | run twice N | lost N

- failed with a clear error: the job has a record that says why (cancelled, expired, failed);
- run twice: more than one worker copy finished the job's generation (read from the worker logs,
  where every copy that finishes logs `job <id> finished`);
- lost: no record within the scenario's bound, or the waiter was told the job vanished.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kombu import Connection

from api_client import AsyncInferQClient, AsyncJobHandle, InferqError, JobLost, JobRestarted, JobTimeout
from harness.embedded_redis import EmbeddedRedis
from harness.worker_process import WorkerProcess
from tasks import names
from tasks.config import QueueSettings

LEASE_ENV = {"INFERQ_LEASE_TTL_S": "3", "INFERQ_HEARTBEAT_S": "1", "INFERQ_SHUTDOWN_GRACE_S": "2"}


@dataclass
class Tally:
    scenario: str
    sent: int = 0
    succeeded: int = 0
    failed_clearly: int = 0
    run_twice: int = 0
    lost: int = 0
    restarted_streams: int = 0
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        extra = f" | streams told JobRestarted {self.restarted_streams}" if self.restarted_streams else ""
        notes = f" ({'; '.join(self.notes)})" if self.notes else ""
        return (
            f"{self.scenario}: sent {self.sent} | succeeded {self.succeeded} | failed with a clear error "
            f"{self.failed_clearly} | run twice {self.run_twice} | lost {self.lost}{extra}{notes}"
        )


FIGURES: list[Tally] = []  # printed at the end of the run


class FaultBed:
    """Its own Redis (`redis`), unless given the URL of Redis set up by the scenario (then `redis` is None)."""

    def __init__(self, folder: Path, redis_url: str | None = None) -> None:
        self.folder = folder
        self.redis = None if redis_url else EmbeddedRedis(password="fault-secret", appendonly=True)
        self.url = redis_url or self.redis.start()
        self.workers: list[WorkerProcess] = []

    @property
    def settings(self) -> QueueSettings:
        # A generous grace: workers that miss heartbeats while Redis is away still serve their model.
        return QueueSettings(redis_url=self.url, no_worker_grace_s=60)

    def worker(self, name: str, concurrency: int = 16, env: dict[str, str] | None = None, **engine_args):
        process = WorkerProcess(
            self.url, "echo", name, self.folder, engine="echo", concurrency=concurrency,
            engine_args=engine_args, env={**LEASE_ENV, **(env or {})},
        )  # fmt: skip
        self.workers.append(process)
        return process.start()

    def client(self) -> AsyncInferQClient:
        return AsyncInferQClient(model="faulty", settings=self.settings)

    def copies_finished(self, job_id: str) -> int:
        return sum(
            (worker.log_path.read_text(errors="replace").count(f"job {job_id} finished")) for worker in self.workers
        )

    async def settle(self, tally: Tally, handles: list[AsyncJobHandle], bound_s: float = 180) -> Tally:
        """Waits (at most `bound_s` for all) for every job's record, and counts what became of each."""
        until = time.monotonic() + bound_s

        reasons: Counter[str] = Counter()  # why jobs failed, for the figures: a clear error is still read

        async def outcome(handle: AsyncJobHandle) -> str:
            try:
                await handle.result(timeout=max(1.0, until - time.monotonic()))
                return "succeeded"
            except (JobTimeout, JobLost):
                return "lost"
            except InferqError as error:
                reasons[f"{type(error).__name__}: {error}"] += 1
                return "failed" if getattr(error, "record", None) is not None else "lost"

        outcomes = await asyncio.gather(*[outcome(handle) for handle in handles])
        if reasons and len(reasons) <= 3:
            tally.notes += [f"{count} x {reason}" for reason, count in reasons.most_common()]
        elif reasons:
            tally.notes.append(f"{len(reasons)} different errors, the first: {reasons.most_common(1)[0][0]}")
        tally.sent = len(handles)
        tally.succeeded = outcomes.count("succeeded")
        tally.failed_clearly = outcomes.count("failed")
        tally.lost = outcomes.count("lost")
        tally.run_twice = sum(1 for handle in handles if self.copies_finished(handle.id) > 1)
        FIGURES.append(tally)
        return tally

    def close(self) -> None:
        for worker in self.workers:
            worker.stop(timeout_s=20)
        if self.settings.uses_amqp:
            self._purge_rabbitmq_queue()
        if self.redis is not None:
            self.redis.stop()

    def _purge_rabbitmq_queue(self) -> None:
        """Every bed has a Redis of its own but shares the session's RabbitMQ vhost: a message this scenario
        left (a duplicate it sent, one handed back at its workers' stop) must not reach the next one's workers."""
        with Connection(self.settings.broker, connect_timeout=10) as connection:
            try:
                connection.default_channel.queue_purge(names.queue_for_model("faulty"))
            except connection.channel_errors:
                pass  # never declared: nothing was left


async def read_streams(handles: list[AsyncJobHandle], tally: Tally) -> None:
    """Every streaming reader gets its whole answer, or is told the job restarted (then reads again)."""

    async def read(handle: AsyncJobHandle) -> None:
        while True:
            try:
                async for _ in handle.stream():
                    pass
                return
            except JobRestarted:
                tally.restarted_streams += 1
            except InferqError:
                return  # the record says why; settle() counts it

    await asyncio.gather(*[read(handle) for handle in handles])


@pytest.fixture
def bed(tmp_path):
    fault_bed = FaultBed(tmp_path)
    yield fault_bed
    fault_bed.close()


def pytest_terminal_summary(terminalreporter, config):
    if FIGURES:
        broker = "RabbitMQ" if config.getoption("--broker") == "amqp" else "Redis"
        terminalreporter.section(f"fault suite, {broker} as the broker: what became of every job")
        for tally in FIGURES:
            terminalreporter.write_line(tally.line())
