"""`inferq batch run|resume`: an offline batch over the fleet from a file, without the gateway."""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cli.producer import queue_settings
from engines.errors import InferqError


def add_parser(commands: argparse._SubParsersAction) -> None:
    batch = commands.add_parser("batch", help="run a file of requests or a LLaMA-Factory dataset as a batch")
    actions = batch.add_subparsers(dest="action", required=True)

    run = actions.add_parser("run", help="start a batch (OpenAI batch JSONL, or an alpaca/sharegpt dataset)")
    run.add_argument("input", help="the input file, or with --dataset-dir an entry of its dataset_info.json")
    run.add_argument("-o", "--output", required=True, type=Path, help="answers, as OpenAI's batch output lines")
    run.add_argument("--model", help="served model; required for a dataset, the default for JSONL bodies")
    run.add_argument("--dataset-dir", help="LLaMA-Factory's data directory (the one with dataset_info.json)")
    run.add_argument("--formatting", choices=["alpaca", "sharegpt"], help="a dataset file's format (guessed)")
    run.add_argument("--score", action="store_true", help="score each example's answer with a reward model")
    run.add_argument("--predictions", type=Path, help="also write LLaMA-Factory's generated_predictions.jsonl")
    run.add_argument("--errors", type=Path, help="failed and refused lines (default: OUTPUT.errors.jsonl)")
    run.add_argument("--window", type=int, default=64, help="jobs in flight at once (default 64)")
    run.add_argument("--redis-url", help="default: $INFERQ_REDIS_URL or redis://127.0.0.1:6379/0")
    run.set_defaults(handler=run_batch_command)

    resume = actions.add_parser("resume", help="carry on with a batch that was interrupted")
    resume.add_argument("output", type=Path, help="the batch's --output")
    resume.add_argument("--redis-url", help="default: $INFERQ_REDIS_URL or redis://127.0.0.1:6379/0")
    resume.set_defaults(handler=resume_batch_command)


def run_batch_command(args: argparse.Namespace, _: list[str]) -> int:
    from batch.journal import Manifest

    output = args.output.resolve()
    if args.window < 1:
        raise SystemExit("inferq batch: --window must be at least 1")
    errors = (args.errors or output.with_name(f"{output.name}.errors.jsonl")).resolve()
    # Paths resolved now, so that `resume` from any directory reads the same files.
    manifest = Manifest(
        batch_id=uuid.uuid4().hex, model=args.model, formatting=args.formatting, score=args.score, window=args.window,
        input=args.input if args.dataset_dir is not None else str(Path(args.input).resolve()),
        dataset_dir=None if args.dataset_dir is None else str(Path(args.dataset_dir).resolve()),
        errors=str(errors), predictions=None if args.predictions is None else str(args.predictions.resolve()),
    )  # fmt: skip
    return _run(manifest, output, args, new=True)


def resume_batch_command(args: argparse.Namespace, _: list[str]) -> int:
    from batch.journal import Manifest, manifest_path

    output = args.output.resolve()
    path = manifest_path(output)
    if not path.exists():
        raise SystemExit(f"inferq batch: no batch wrote {args.output} (no {path.name})")
    try:
        manifest = Manifest.model_validate_json(path.read_text())
    except ValueError as error:
        raise SystemExit(f"inferq batch: {path} is not a batch manifest ({error})") from None
    return _run(manifest, output, args, new=False)


def _run(manifest, output: Path, args: argparse.Namespace, new: bool) -> int:
    from api_client import AsyncInferQClient
    from batch.journal import manifest_path
    from cli.file_batch import lines_fingerprint, read_lines, run_file_batch

    settings = queue_settings(args)
    try:
        # The input is read before anything is written: a run refused for its input leaves no manifest behind.
        lines, refusals = read_lines(manifest)
        fingerprint = lines_fingerprint(lines, refusals)
        if new:
            manifest = manifest.model_copy(update={"fingerprint": fingerprint})
            for path in (
                output,
                Path(manifest.errors),
                *([Path(manifest.predictions)] if manifest.predictions else []),
            ):
                path.parent.mkdir(parents=True, exist_ok=True)
        with _sole_run(output, args.output):
            if new:  # checked under the lock: a run started beside this one has written its manifest by now
                _refuse_a_taken_output(output, Path(manifest.errors), args.output)
                manifest_path(output).write_text(manifest.model_dump_json(indent=2))
            elif manifest.fingerprint is not None and manifest.fingerprint != fingerprint:
                print(f"inferq batch: {manifest.input} changed since the batch started (its lines are not the same); "
                      "start a new batch with another --output", file=sys.stderr)  # fmt: skip
                return 1

            async def run() -> str:
                async with AsyncInferQClient(settings=settings) as client:
                    return await run_file_batch(client, manifest, output, _progress_printer(), lines, refusals)

            print(asyncio.run(run()))
    # the input as a whole (a dataset entry that does not exist), a file not there or not text, a full disk
    except (InferqError, OSError, ValueError) as error:
        print(f"inferq batch: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninferq batch: interrupted; `inferq batch resume {args.output}` carries on", file=sys.stderr)
        return 130
    return 0


@contextmanager
def _sole_run(output: Path, shown: Path) -> Iterator[None]:
    """Held for the whole run or resume: two at once on one output would each submit and write every line."""
    from batch.journal import lock_path

    with lock_path(output).open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"inferq batch: another `inferq batch` is running on {shown} (it holds "
                             f"{lock_path(output).name}): wait for it to end") from None  # fmt: skip
        yield  # closing the file lets go of the lock, also when the process dies


def _refuse_a_taken_output(output: Path, errors: Path, shown: Path) -> None:
    from batch.journal import manifest_path

    if manifest_path(output).exists():
        raise SystemExit(f"inferq batch: {shown} belongs to a batch already: `inferq batch resume {shown}`")
    for taken in (output, errors):
        if taken.exists() and taken.stat().st_size:  # another run's answers would count as this batch's
            raise SystemExit(f"inferq batch: {taken} exists and belongs to no batch: move it, or name another output")


def _progress_printer():
    last = [0.0]

    def show(progress, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - last[0] < 1.0:
            return
        last[0] = now
        eta = "" if progress.eta_s is None else f" · ETA {progress.eta_s:.0f} s"
        line = (f"{progress.done + progress.failed}/{progress.total} done · {progress.failed} failed · "
                f"{progress.in_flight} in flight · {progress.output_tokens} tokens{eta}")  # fmt: skip
        print(f"\r{line}" if sys.stderr.isatty() else line, end="\n" if final or not sys.stderr.isatty() else "",
              file=sys.stderr, flush=True)  # fmt: skip

    return show
