"""`inferq demo` and `inferq bench`: commands that start local processes (an embedded Redis, workers)."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.config import DEFAULT_PARTS, PARTS, BenchConfig


def add_parsers(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="the whole flow on this machine: Redis, two workers, a chat, a score")
    demo.add_argument("--question", default="What is the capital of France?")
    demo.set_defaults(handler=run_demo)

    defaults = BenchConfig()
    bench = commands.add_parser(
        "bench",
        help="what the queue costs, each figure next to its baseline measured in the same run",
        description=f"Parts: {', '.join(PARTS)}. vllm, admission and serve are off by default: a vLLM engine takes "
        "~40 s to start.",
    )
    bench.add_argument("--parts", type=_parts, default=DEFAULT_PARTS, help=f"default: {','.join(DEFAULT_PARTS)}")
    bench.add_argument("--redis-url", help="default: an embedded redis-server of the run's own")
    bench.add_argument("--model", default=defaults.model, help="for the hf, vllm and bound parts")
    bench.add_argument("--worker-concurrency", type=int, default=defaults.worker_concurrency)
    bench.add_argument("--samples", type=int, default=defaults.samples, help="overhead: samples for the echo engine")
    bench.add_argument("--hf-samples", type=int, default=defaults.hf_samples, help="overhead: for the hf engine")
    bench.add_argument("--overhead-engines", type=_names, default=defaults.overhead_engines, help="echo,hf")
    bench.add_argument("--inflight", type=_numbers, default=defaults.inflight, help="plumbing: jobs in flight")
    bench.add_argument("--plumbing-jobs", type=int, default=defaults.plumbing_jobs, help="plumbing: jobs per level")
    bench.add_argument("--hf-concurrency", type=_numbers, default=defaults.hf_concurrency, help="hf, vllm")
    bench.add_argument("--new-tokens", type=int, default=defaults.new_tokens, help="hf, vllm, bound")
    bench.add_argument("--burst", type=int, default=defaults.burst, help="hf, vllm: one-token chats in the burst")
    bench.add_argument("--admission-jobs", type=int, default=defaults.admission_jobs, help="admission: chats")
    bench.add_argument("--repeats", type=int, default=defaults.repeats, help="hf: runs per figure (the median)")
    bench.add_argument("--stream-jobs", type=int, default=defaults.stream_jobs)
    bench.add_argument("--stream-tokens", type=int, default=defaults.stream_tokens)
    bench.add_argument("--stream-rate", type=float, default=defaults.stream_rate, help="tokens/s for the latency")
    bench.add_argument("--waiting-jobs", type=int, default=defaults.waiting_jobs, help="footprint")
    bench.add_argument("--requests", type=int, default=defaults.bound_requests, help="bound: concurrent requests")
    bench.add_argument("--serve-prompts", type=int, default=defaults.serve_prompts, help="serve: vllm bench serve")
    bench.add_argument("--serve-concurrency", type=int, default=defaults.serve_concurrency, help="serve")
    bench.add_argument("--serve-input-len", type=int, default=defaults.serve_input_len, help="serve: prompt tokens")
    bench.add_argument("--serve-output-len", type=int, default=defaults.serve_output_len, help="serve: answer tokens")
    bench.add_argument("--batch-engine", choices=["hf", "vllm", "echo"], default=defaults.batch_engine, help="batch")
    bench.add_argument("--batch-rows", type=int, default=defaults.batch_rows, help="batch: rows the batch keeps busy")
    bench.add_argument("--batch-samples", type=int, default=defaults.batch_samples, help="batch: chats, each way")
    bench.add_argument("--json", type=Path, default=defaults.json_path)
    bench.add_argument("--plot", type=Path, default=defaults.plot_path)
    bench.set_defaults(handler=run_bench)


def run_demo(args: argparse.Namespace, _: list[str]) -> int:
    from cli.demo import run

    return run(args.question)


def run_bench(args: argparse.Namespace, _: list[str]) -> int:
    from benchmarks.runner import run

    config = BenchConfig(
        parts=args.parts,
        redis_url=args.redis_url,
        model=args.model,
        worker_concurrency=args.worker_concurrency,
        samples=args.samples,
        hf_samples=args.hf_samples,
        overhead_engines=args.overhead_engines,
        inflight=args.inflight,
        plumbing_jobs=args.plumbing_jobs,
        hf_concurrency=args.hf_concurrency,
        new_tokens=args.new_tokens,
        burst=args.burst,
        admission_jobs=args.admission_jobs,
        repeats=args.repeats,
        stream_jobs=args.stream_jobs,
        stream_tokens=args.stream_tokens,
        stream_rate=args.stream_rate,
        waiting_jobs=args.waiting_jobs,
        bound_requests=args.requests,
        serve_prompts=args.serve_prompts,
        serve_concurrency=args.serve_concurrency,
        serve_input_len=args.serve_input_len,
        serve_output_len=args.serve_output_len,
        batch_engine=args.batch_engine,
        batch_rows=args.batch_rows,
        batch_samples=args.batch_samples,
        json_path=args.json,
        plot_path=args.plot,
    )
    return run(config)


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _parts(text: str) -> tuple[str, ...]:
    unknown = set(_names(text)) - set(PARTS)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown parts {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    return _names(text)


def _numbers(text: str) -> tuple[int, ...]:
    return tuple(int(number) for number in _names(text))
