"""End to end against what a user would run instead: `vllm serve`, and inferq's gateway in front of a vLLM
worker, on the same model, the same cores and the same vLLM settings (fp32, eager), both driven by vLLM's own
load generator (`vllm bench serve --backend openai-chat`, random prompts; it sends `ignore_eos`, so every
answer is exactly `--serve-output-len` tokens; greedy). One side at a time: two engines would share the cores.

inferq's side is the whole path a request takes: HTTP into the gateway, a job through Redis and Celery, the
worker's vLLM engine, its tokens back through Redis pub/sub and out as SSE. Its TTFT is set beside one bare
Celery round trip, measured in the same run: the target is to add no more than that.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.progress import Progress

from benchmarks.celery_client import CeleryNoopClient
from benchmarks.config import BenchConfig, EngineSpec
from benchmarks.engine_queue import use_vllm_cpu_env
from benchmarks.results import Row, Target, median
from benchmarks.rig import Rig
from engines.default_model import resolve_model
from harness.gateway_process import GatewayProcess
from harness.vllm_serve import VllmServeProcess

SERVED_NAME = "bench-serve"
CELERY_SAMPLES = 20


@dataclass(frozen=True)
class ServeResult:
    """What `vllm bench serve --save-result` wrote of one run."""

    completed: int
    failed: int
    output_tok_s: float
    ttft_p50_ms: float
    ttft_p99_ms: float
    itl_p50_ms: float

    @classmethod
    def read(cls, path: Path) -> ServeResult:
        result = json.loads(path.read_text())
        return cls(
            completed=result["completed"],
            failed=result.get("failed", 0),
            output_tok_s=result["output_throughput"],
            ttft_p50_ms=result["median_ttft_ms"],
            ttft_p99_ms=result["p99_ttft_ms"],
            itl_p50_ms=result["median_itl_ms"],
        )


async def run(rig: Rig, config: BenchConfig, progress: Progress) -> list[Row]:
    use_vllm_cpu_env()  # the worker process inherits it too
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    env = dict(os.environ)
    model_dir = resolve_model(config.model)
    results_dir = Path(tempfile.mkdtemp(prefix="inferq-bench-serve-"))
    steps = progress.add_task("serve: vllm serve, then inferq gateway + vLLM worker", total=2)

    server = VllmServeProcess(model_dir, SERVED_NAME, rig.log_dir / "vllm-serve.log", env)
    try:
        await server.start()
        direct = await _bench(config, model_dir, server.url, results_dir / "vllm-serve.json", rig)
    finally:
        server.stop()
    progress.advance(steps)

    spec = EngineSpec(SERVED_NAME, "vllm", config.model, {"enforce_eager": True}, concurrency=None)
    rig.worker(spec)
    gateway = GatewayProcess(rig.redis_url, rig.log_dir / "gateway.log").start()
    try:
        queued = await _bench(config, model_dir, gateway.url, results_dir / "inferq.json", rig)
    finally:
        gateway.stop()
        rig.stop_worker(spec)
    progress.advance(steps)

    rig.noop_worker(config.worker_concurrency)
    async with CeleryNoopClient(rig.redis_url) as celery:
        celery_ms = []
        for _ in range(CELERY_SAMPLES):
            started = time.perf_counter()
            await celery.round_trip()
            celery_ms.append((time.perf_counter() - started) * 1000)
    return _rows(config, queued, direct, median(celery_ms))


def _rows(config: BenchConfig, queued: ServeResult, direct: ServeResult, celery_ms: float) -> list[Row]:
    load = f"{config.serve_prompts} prompts, {config.serve_concurrency} concurrent"
    shape = f"{config.serve_input_len} in / {config.serve_output_len} out"
    return [
        Row("serve", f"answered of {config.serve_prompts} ({load})", "requests", queued.completed,
            direct.completed, "vllm serve"),
        Row("serve", f"output tok/s, gateway vs vllm serve ({shape})", "tok/s", queued.output_tok_s,
            direct.output_tok_s, "vllm serve", Target("ratio", ">=", 0.95), load=config.serve_concurrency),
        Row("serve", "TTFT p50", "ms", queued.ttft_p50_ms, direct.ttft_p50_ms, "vllm serve"),
        Row("serve", "TTFT p99", "ms", queued.ttft_p99_ms, direct.ttft_p99_ms, "vllm serve"),
        Row("serve", "ITL p50", "ms", queued.itl_p50_ms, direct.itl_p50_ms, "vllm serve"),
        Row("serve", "TTFT p50 the gateway and queue add", "ms", queued.ttft_p50_ms - direct.ttft_p50_ms,
            celery_ms, "Celery round trip", Target("ratio", "<=", 1.0)),
    ]  # fmt: skip


async def _bench(config: BenchConfig, model_dir: str, base_url: str, result: Path, rig: Rig) -> ServeResult:
    """One `vllm bench serve` run against `base_url`, as a user would type it."""
    command = [
        sys.executable, "-m", "benchmarks.vllm_cli", "bench", "serve",
        "--backend", "openai-chat", "--endpoint", "/v1/chat/completions", "--base-url", base_url,
        "--model", SERVED_NAME, "--tokenizer", model_dir,
        "--dataset-name", "random", "--random-input-len", str(config.serve_input_len),
        "--random-output-len", str(config.serve_output_len), "--num-prompts", str(config.serve_prompts),
        "--max-concurrency", str(config.serve_concurrency), "--temperature", "0", "--seed", "0",
        "--percentile-metrics", "ttft,itl", "--metric-percentiles", "50,99",
        "--save-result", "--result-dir", str(result.parent), "--result-filename", result.name, "--disable-tqdm",
    ]  # fmt: skip
    with open(rig.log_dir / f"{result.stem}-bench.log", "wb") as log:
        process = await asyncio.create_subprocess_exec(*command, stdout=log, stderr=subprocess.STDOUT)
        if await process.wait() != 0:
            raise RuntimeError(f"vllm bench serve against {base_url} failed; see {log.name}")
    return ServeResult.read(result)
