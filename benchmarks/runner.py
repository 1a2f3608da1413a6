"""`inferq bench`: every selected part in one run, one Redis, one event loop; then the table, JSON and plot.

Parts that need the queue share one rig (Redis and workers, started on first use). The `bound` part
(the HF engine against plain `generate()`, no queue) runs last, on its own loop, with the workers gone.
"""

from __future__ import annotations

import asyncio
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks import admission, beside_batch, engine_queue, footprint, overhead, plumbing, serve, streaming
from benchmarks.config import BenchConfig
from benchmarks.report import machine, print_summary, table, write_json, write_plot
from benchmarks.results import Row
from benchmarks.rig import Rig

QUEUE_PARTS = {
    "overhead": overhead.run,
    "plumbing": plumbing.run,
    "hf": engine_queue.run_hf,
    "vllm": engine_queue.run_vllm,
    "admission": admission.run,
    "serve": serve.run,
    "streaming": streaming.run,
    "footprint": footprint.run,
    "batch": beside_batch.run,
}


def run(config: BenchConfig) -> int:
    # Piped output (a log, CI) gets a table wide enough to read instead of rich's default 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 160)
    rows: list[Row] = []
    queue_parts = [part for part in config.parts if part in QUEUE_PARTS]
    if queue_parts:
        rig = Rig(console, config.redis_url)
        try:
            rig.start()
            rows += asyncio.run(_queue_parts(rig, config, queue_parts, console))
        finally:
            rig.stop()
    if "bound" in config.parts:
        from benchmarks.engine import measure  # imports torch and transformers

        rows += measure(config.model, config.bound_requests, config.new_tokens, console)
    title = f"inferq bench ({machine()})"
    console.print(table(rows, title))
    print_summary(console, rows)
    write_json(rows, config, config.json_path)
    write_plot(rows, title, config.plot_path)
    console.print(f"wrote {config.json_path} and {config.plot_path}")
    return 0


async def _queue_parts(rig: Rig, config: BenchConfig, parts: list[str], console: Console) -> list[Row]:
    rows: list[Row] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console) as progress:
            for part in parts:
                rows += await QUEUE_PARTS[part](rig, config, progress)
    finally:
        await rig.aclose()
    return rows
