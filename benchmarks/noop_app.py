"""The bare-Celery baseline: a no-op task on inferq's own Celery setup (same Redis, transport, JSON, acks,
prefetch, events), finished the way plain Celery reports a result: its Redis result backend.

Run by `NoopWorker` as `celery -A benchmarks.noop_app worker`, with `--pool threads` and the same
concurrency and log level as the inferq worker it is compared with.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import Any

from celery import Celery, signals

from tasks.app import make_app
from tasks.config import QueueSettings
from tasks.schemas import WorkerInfo
from tasks.store import JobStore

NOOP_TASK = "inferq.bench.noop"
NOOP_QUEUE = "inferq.bench.noop"
# Celery's Redis backend SETs and PUBLISHes each result under this prefix and the task id.
RESULT_CHANNEL_PREFIX = "celery-task-meta-"


def make_noop_app(settings: QueueSettings, *, broker_pool_limit: int = 10) -> Celery:
    app = make_app(settings, broker_pool_limit=broker_pool_limit)
    app.conf.update(result_backend=settings.redis_url, task_ignore_result=False)
    app.task(name=NOOP_TASK, ignore_result=False)(_noop)
    return app


def _noop() -> None:
    return None


app = make_noop_app(QueueSettings())


@signals.worker_ready.connect
def _announce(sender: Any, **_: Any) -> None:
    # Announced in inferq's worker registry, so harness.WorkerProcess starts it like any inferq worker.
    info = WorkerInfo(
        hostname=sender.hostname,
        model=NOOP_QUEUE,
        engine="celery-noop",
        model_path="",
        can_generate=False,
        host=socket.gethostname(),
        pid=os.getpid(),
        started_at=time.time(),
        concurrency=sender.controller.concurrency,
    )

    async def announce() -> None:
        store = JobStore.open(QueueSettings())
        try:
            await store.announce(info, ttl_s=24 * 3600)
        finally:
            await store.aclose()

    asyncio.run(announce())
