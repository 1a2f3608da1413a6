"""`inferq demo` and `inferq bench`: commands that start local processes (an embedded Redis, workers)."""

from __future__ import annotations

import argparse


def add_parsers(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="the whole flow on this machine: Redis, two workers, a chat, a score")
    demo.add_argument("--question", default="What is the capital of France?")
    demo.set_defaults(handler=run_demo)

    bench = commands.add_parser("bench", help="HF engine throughput, measured against its padded-batch bound")
    bench.add_argument("--model", default="smollm2")
    bench.add_argument("--requests", type=int, default=16)
    bench.add_argument("--new-tokens", type=int, default=64)
    bench.set_defaults(handler=run_bench)


def run_demo(args: argparse.Namespace, _: list[str]) -> int:
    from cli.demo import run

    return run(args.question)


def run_bench(args: argparse.Namespace, _: list[str]) -> int:
    from benchmarks.engine import run

    return run(args.model, args.requests, args.new_tokens)
