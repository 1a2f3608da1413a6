"""The worker's Celery app: the shared app plus the tasks, the engine bootstep and its command-line options.

`celery -A worker.app worker --engine huggingface --model smollm2 --pool threads` works as well as
`inferq worker`, which only fills in these flags; every standard `celery worker` option keeps working.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

import click
from celery import bootsteps, signals
from celery.exceptions import Ignore, Reject

from engines.errors import InferqError
from tasks import names
from tasks.app import job_priority, job_queue, make_app
from tasks.errors import error_from_info
from worker import orphan_guard
from worker.admission import admit
from worker.jobs import Requeue, Skipped, run_job
from worker.reaper import Reaper
from worker.runner import EngineRunner
from worker.settings import worker_settings
from worker.shutdown import ShutdownClock

log = logging.getLogger(__name__)

app = make_app(submits_jobs=False)
_runner: EngineRunner | None = None
_reaper: Reaper | None = None
_shutdown_clock: ShutdownClock | None = None

# Pools that run tasks in the worker's own process, where the engine lives. prefork would fork CUDA
# into children (pytorch#40403) and give each child its own engine.
ENGINE_POOLS = ("celery.concurrency.thread", "celery.concurrency.solo")

WORKER_OPTIONS = {
    "engine": "Engine backend: huggingface, vllm, sglang or ktransformers.",
    "model": "Checkpoint path, hub name, or smollm2 (the default model).",
    "name": "Served model name producers ask for (default: from --model).",
    "gpus": "Comma-separated GPU indices to pin this worker to (sets CUDA_VISIBLE_DEVICES).",
    "engine_args": "JSON object of engine arguments, e.g. '{\"max_batch_size\": 16}'.",
    "metrics_port": "Serve Prometheus metrics on this port (off by default).",
}
for _option, _help in WORKER_OPTIONS.items():
    app.user_options["worker"].add(click.Option([f"--{_option.replace('_', '-')}"], default=None, help=_help))


def runner() -> EngineRunner:
    if _runner is None:
        raise RuntimeError("no engine: this process is not an inferq worker (start it with `inferq worker`)")
    return _runner


def pin_gpus(gpus: list[int] | None) -> None:
    if gpus is None:
        return
    if "torch" in sys.modules:
        raise SystemExit("inferq worker: torch was imported before the worker pinned its GPUs")
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpus))


class EngineStep(bootsteps.StartStopStep):
    """Loads the worker's one engine before the consumer starts taking jobs."""

    requires = ("celery.worker.components:Pool",)

    def __init__(self, worker: Any, **options: Any) -> None:
        super().__init__(worker, **options)
        self.settings = worker_settings(
            # `concurrency` as given (None when not), not Celery's cpu-count default: none means the engine's capacity
            **{key: options.get(key) for key in WORKER_OPTIONS},
            concurrency=options.get("concurrency"),
        )
        if worker.pool_cls.__module__ not in ENGINE_POOLS:
            raise SystemExit("inferq worker: use --pool threads (or solo); the engine lives in the worker process")
        pin_gpus(self.settings.gpus)
        # An inferq worker consumes exactly its model's queue.
        queue = job_queue(self.settings, self.settings.name)
        if not isinstance(queue, str):
            worker.app.amqp.queues.add(queue)  # RabbitMQ: declared with the arguments producers use
        worker.setup_queues([names.queue_for_model(self.settings.name)])

    def start(self, worker: Any) -> None:
        global _runner, _reaper
        # Before the engine spawns anything: vLLM's processes must not outlive a killed worker.
        orphan_guard.start(os.getpid())
        _runner = EngineRunner(self.settings, worker.hostname)
        _runner.start()
        admit(worker, _runner.slots)
        if not self.settings.uses_amqp:  # RabbitMQ gives a dead consumer's unacked jobs back by itself
            _reaper = Reaper(
                worker.app,
                self.settings.lease_ttl_s,
                is_running=lambda job_id: _runner.call(_runner.store.is_running(job_id)),
            )
            _reaper.start()
        queue = names.queue_for_model(self.settings.name)
        log.info("serving %s (%s engine) on queue %s", self.settings.name, self.settings.engine, queue)


app.steps["worker"].add(EngineStep)


@signals.worker_shutting_down.connect
def _start_the_shutdown_clock(how: str = "Warm", **_: Any) -> None:
    # Sent from the SIGTERM handler: running jobs get `shutdown_grace_s` to finish, then go back to the queue.
    global _shutdown_clock
    if _runner is None or how != "Warm":
        return
    if _shutdown_clock is None:
        _shutdown_clock = ShutdownClock(
            _runner.settings.shutdown_grace_s, _runner.hand_back_running_jobs, _runner.describe_tasks
        )
    _shutdown_clock.start()


@signals.worker_shutdown.connect
def _close_engine(**_: Any) -> None:
    # Sent after the pool has finished its jobs (warm shutdown), so no job loses its engine.
    if _shutdown_clock is not None:
        _shutdown_clock.finished()
    if _reaper is not None:
        _reaper.stop()
    if _runner is not None:
        _runner.stop()


@app.task(name=names.CHAT_TASK, bind=True, throws=(InferqError,))
def chat(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
    return _execute(self, "chat", args, kwargs)


@app.task(name=names.SCORE_TASK, bind=True, throws=(InferqError,))
def score(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
    return _execute(self, "score", args, kwargs)


def _execute(task: Any, kind: str, args: tuple, kwargs: dict) -> dict[str, Any]:
    current = runner()
    priority = job_priority(current.settings, (task.request.delivery_info or {}).get("priority"))
    outcome = current.call(run_job(current, task.request.id, kind, args, kwargs, task.request.hostname, priority))
    if isinstance(outcome, Skipped):
        log.info("job %s: %s", task.request.id, outcome.reason)
        raise Ignore()
    if isinstance(outcome, Requeue):
        if outcome.fatal:
            log.error("job %s goes back to the queue: %s; this worker stops", task.request.id, outcome.reason)
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            log.warning("job %s goes back to the queue: %s", task.request.id, outcome.reason)
        raise Reject(outcome.reason, requeue=True)
    record = outcome.record
    log.info("job %s finished: %s (attempt %d)", task.request.id, record.status.value, record.attempt)
    if not outcome.written:
        # A client cancelled or expired the job first; its record stands, and Celery's state stays out of it.
        log.info("job %s already had a record", task.request.id)
        raise Ignore()
    if record.error is None:
        # what Flower shows as the result: a summary, not the answer
        return f"{record.status.value}: {record.usage.completion_tokens if record.usage else 0} tokens"
    # Celery's own state (and Flower) shows the failure; the job record is what clients read.
    raise error_from_info(record.error, record)
