"""`inferq status`: what the fleet is doing now — live workers, each model's queue, and the Batch API's running
batches with their progress."""

from __future__ import annotations

import argparse
import json
import socket
import time

from rich.console import Console
from rich.table import Table

from tasks.batch_store import BatchInfo
from tasks.schemas import QueueInfo, WorkerInfo


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("status", help="live workers, and each model's queue depth and oldest job")
    parser.add_argument("--redis-url", help="default: $INFERQ_REDIS_URL or redis://127.0.0.1:6379/0")
    parser.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    parser.add_argument(
        "--check-here", action="store_true", help="exit 1 unless a live worker runs on this host (a healthcheck)"
    )
    parser.set_defaults(handler=run_status)


def run_status(args: argparse.Namespace, _: list[str]) -> int:
    from cli.producer import client_for

    with client_for(args) as client:
        workers, queues, batches = client.workers(), client.queues(), client.batches()
    now = time.time()
    if args.check_here:
        return 0 if any(info.host == socket.gethostname() for info in workers) else 1
    if args.json:
        print(json.dumps(status_document(workers, queues, batches, now), indent=2))
    else:
        console = Console()
        console.print(workers_table(workers, now))
        console.print(queues_table(queues, now))
        if batches:
            console.print(batches_table(batches))
    return 0


def status_document(workers: list[WorkerInfo], queues: list[QueueInfo], batches: list[BatchInfo], now: float) -> dict:
    return {
        "workers": [
            {**info.model_dump(mode="json"), "uptime_s": round(now - info.started_at, 1)}
            for info in sorted(workers, key=lambda w: w.hostname)
        ],
        "queues": [{**queue.model_dump(mode="json"), "oldest_age_s": _age(queue, now)} for queue in queues],
        "batches": [batch.model_dump(mode="json") for batch in batches],
    }


def workers_table(workers: list[WorkerInfo], now: float) -> Table:
    table = Table(title=f"{len(workers)} live worker(s)")
    for column in ("worker", "model", "engine", "GPUs", "host", "up", "in flight", "capacity"):
        table.add_column(column)
    for info in sorted(workers, key=lambda w: w.hostname):
        gpus = ",".join(map(str, info.gpus)) if info.gpus else "-"
        table.add_row(
            info.hostname, info.model, info.engine, gpus, info.host, _duration(now - info.started_at),
            str(info.num_running), str(info.concurrency),
        )  # fmt: skip
    return table


def queues_table(queues: list[QueueInfo], now: float) -> Table:
    table = Table(title="queues")
    for column in ("model", "queued", "oldest waiting"):
        table.add_column(column)
    for queue in queues:
        age = _age(queue, now)
        table.add_row(queue.model, str(queue.depth), "-" if age is None else _duration(age))
    return table


def batches_table(batches: list[BatchInfo]) -> Table:
    table = Table(title=f"{len(batches)} running batch(es)")
    for column in ("batch", "owner", "status", "done", "failed", "total", "in flight", "output tokens", "ETA"):
        table.add_column(column)
    for batch in batches:
        eta = "-" if batch.eta_s is None else _duration(batch.eta_s)
        table.add_row(batch.id, batch.owner, batch.status, str(batch.completed), str(batch.failed), str(batch.total),
                      str(batch.in_flight), str(batch.output_tokens), eta)  # fmt: skip
    return table


def _age(queue: QueueInfo, now: float) -> float | None:
    return None if queue.oldest_queued_at is None else round(now - queue.oldest_queued_at, 1)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
