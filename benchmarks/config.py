"""The sizes of one `inferq bench` run, and the engines its parts serve; the defaults fit a few minutes on 2 cores."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# vLLM takes ~40 s to start on CPU, so its parts run only when asked for (--parts ...,vllm,admission,serve).
PARTS = ("overhead", "plumbing", "hf", "vllm", "admission", "serve", "streaming", "footprint", "batch", "bound")
DEFAULT_PARTS = ("overhead", "plumbing", "hf", "streaming", "footprint", "batch", "bound")


@dataclass(frozen=True)
class EngineSpec:
    """One engine, served by a worker under `name` and loaded in the bench process for direct calls."""

    name: str
    backend: str
    model: str
    engine_args: dict[str, Any] = field(default_factory=dict)
    concurrency: int | None = 32  # None: the engine's capacity


@dataclass(frozen=True)
class BenchConfig:
    parts: tuple[str, ...] = DEFAULT_PARTS
    redis_url: str | None = None
    model: str = "smollm2"
    worker_concurrency: int = 32
    samples: int = 50
    hf_samples: int = 20  # a SmolLM2 chat takes ~100x an echo one: fewer samples, same minutes
    overhead_engines: tuple[str, ...] = ("echo", "hf")
    inflight: tuple[int, ...] = (1, 16, 256, 4096)
    plumbing_jobs: int = 400
    hf_concurrency: tuple[int, ...] = (1, 16, 64)
    new_tokens: int = 32
    burst: int = 200
    admission_jobs: int = 64
    repeats: int = 3
    stream_jobs: int = 256
    stream_tokens: int = 256
    stream_rate: float = 100.0
    waiting_jobs: int = 10_000
    bound_requests: int = 16
    # batch: interactive TTFT beside a batch that keeps `batch_rows` rows busy (hf, vllm: SmolLM2; echo: paced)
    batch_engine: str = "hf"
    batch_rows: int = 8
    batch_samples: int = 20
    # serve: `vllm bench serve`'s random dataset (issue 20's sizes; the answers are ignore_eos-exact)
    serve_prompts: int = 64
    serve_concurrency: int = 16
    serve_input_len: int = 128
    serve_output_len: int = 64
    json_path: Path = Path("bench-results/bench.json")
    plot_path: Path = Path("bench-results/bench.png")

    @property
    def echo(self) -> EngineSpec:
        return EngineSpec("bench-echo", "echo", "echo", concurrency=self.worker_concurrency)

    @property
    def echo_paced(self) -> EngineSpec:
        """Tokens at a set pace, so each one's trip to the client is timed under a steady stream."""
        return EngineSpec("bench-echo-paced", "echo", "echo", {"tokens_per_s": self.stream_rate}, 16)

    @property
    def echo_held(self) -> EngineSpec:
        """Two slots, both held by `[hold]` jobs: everything else submitted to it waits in the queue."""
        return EngineSpec("bench-echo-held", "echo", "echo", concurrency=2)

    @property
    def batch_engine_spec(self) -> EngineSpec:
        if self.batch_engine == "echo":
            return EngineSpec("bench-echo-batch", "echo", "echo", {"tokens_per_s": self.stream_rate}, self.batch_rows)
        rows = self.batch_rows
        if self.batch_engine == "vllm":  # its scheduler told each job's priority (on by default in the worker)
            args = {"enforce_eager": True, "vllm_config": {"max_num_seqs": rows}}
            return EngineSpec("bench-vllm-batch", "vllm", self.model, args, rows)
        return EngineSpec("bench-hf-batch", "huggingface", self.model, {"max_batch_size": rows}, rows)

    @property
    def hf(self) -> EngineSpec:
        rows = max(self.hf_concurrency)
        return EngineSpec("bench-hf", "huggingface", self.model, {"max_batch_size": rows}, rows)

    @property
    def vllm(self) -> EngineSpec:
        rows = max(self.hf_concurrency)
        return EngineSpec("bench-vllm", "vllm", self.model, {"enforce_eager": True}, rows)
