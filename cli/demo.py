"""`inferq demo` (and `make demo`): the main job on one machine, every part real.

Redis (found, or embedded), two worker processes (SmolLM2 for chat, its untrained reward twin for
scoring), a streamed chat answer and a score job through the queue, then a clean shutdown.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.json import JSON

from engines.default_model import SMOLLM2, SMOLLM2_REWARD, ensure_smollm2, ensure_smollm2_reward
from harness.embedded_redis import EmbeddedRedis, answers
from harness.worker_process import WorkerProcess
from tasks.config import QueueSettings, redacted

console = Console()


def run(question: str) -> int:
    started = time.monotonic()
    redis_url, embedded = _redis()
    log_dir = Path(tempfile.mkdtemp(prefix="inferq-demo-"))
    workers: list[WorkerProcess] = []
    try:
        with console.status("preparing the default models (converted once, then cached)"):
            ensure_smollm2()
            ensure_smollm2_reward()
        with console.status("starting two workers: smollm2 (chat) and smollm2-reward (scoring)"):
            workers = [
                WorkerProcess(redis_url, SMOLLM2, SMOLLM2, log_dir, concurrency=4),
                WorkerProcess(redis_url, SMOLLM2_REWARD, SMOLLM2_REWARD, log_dir, concurrency=2),
            ]
            for worker in workers:
                worker.start()
        console.print(f"[green]workers ready[/] ({', '.join(w.hostname for w in workers)}; logs in {log_dir})")
        _jobs(redis_url, question)
    finally:
        with console.status("stopping the workers"):
            for worker in workers:
                worker.stop()
        if embedded is not None:
            embedded.stop()
    console.print(f"[green]done[/] in {time.monotonic() - started:.0f} s; everything it started has stopped.")
    return 0


def _redis() -> tuple[str, EmbeddedRedis | None]:
    settings = QueueSettings()
    if answers(settings.redis_url):
        console.print(f"Redis: using the server at {settings.redacted_url}")
        return settings.redis_url, None
    embedded = EmbeddedRedis()
    embedded.start()
    console.print(f"Redis: nothing answers at {settings.redacted_url}; started an embedded redis-server at")
    console.print(f"  {redacted(embedded.url)}")
    return embedded.url, embedded


def _jobs(redis_url: str, question: str) -> None:
    from api_client import InferQClient

    with InferQClient(redis_url) as client:
        console.rule("chat job, streamed token by token over Redis pub/sub")
        console.print(f"[bold]User:[/] {question}")
        handle = client.submit_chat([{"role": "user", "content": question}], SMOLLM2, temperature=0)
        console.print("[bold]Assistant:[/] ", end="")
        for piece in handle.stream():
            console.print(piece, end="", highlight=False)
        console.print()
        console.rule("its job record")
        console.print(JSON(handle.result(timeout=120).model_dump_json(exclude_none=True)))

        console.rule("score job (untrained reward head: the numbers show the plumbing, not quality)")
        texts = [f"{question} Paris.", f"{question} London."]
        record = client.submit_score(texts, SMOLLM2_REWARD).result(timeout=120)
        console.print(JSON(record.model_dump_json(exclude_none=True)))
