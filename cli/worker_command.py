"""`inferq worker`: checks the settings, then hands over to `celery worker` with inferq's flags filled in."""

from __future__ import annotations

import argparse
import json
import os
import socket

from worker.settings import WorkerSettings, worker_settings


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "worker",
        help="serve one model from one engine",
        description="Start a GPU-pinned worker. Arguments it does not know go to `celery worker` as they are.",
    )
    parser.add_argument(
        "--config", help="a LLaMA-Factory inference YAML (model, adapter, backend, vllm_*, generation defaults)"
    )
    parser.add_argument("--engine", help="huggingface (default), vllm, sglang or ktransformers")
    parser.add_argument("--model", help="checkpoint path, hub name, or smollm2 (default)")
    parser.add_argument("--name", help="served model name producers ask for (default: from --model)")
    parser.add_argument("--gpus", help="GPU indices to pin to, e.g. 0,1")
    parser.add_argument(
        "--concurrency", type=int, help="jobs running at once in the engine (default: the engine's capacity)"
    )
    parser.add_argument("--engine-args", help="JSON object of engine arguments")
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port (default: off)")
    parser.add_argument("--redis-url", help="default: $INFERQ_REDIS_URL or redis://127.0.0.1:6379/0")
    parser.add_argument("--hostname", help="Celery node name (default: <name>[-gpu<ids>]@<host>)")
    parser.set_defaults(handler=run_worker)


def run_worker(args: argparse.Namespace, celery_args: list[str]) -> int:
    if args.redis_url:
        os.environ["INFERQ_REDIS_URL"] = args.redis_url
    options = _from_config(args.config) if args.config else {}
    flags = {
        "engine": args.engine,
        "model": args.model,
        "name": args.name,
        "gpus": args.gpus,
        "engine_args": args.engine_args,
        "metrics_port": args.metrics_port,
    }
    # a flag given wins over the config; --engine-args adds to (and overrides keys of) the config's
    if args.engine_args and "engine_args" in options:
        flags["engine_args"] = json.dumps({**options["engine_args"], **_json_object(args.engine_args)})
    options.update({key: value for key, value in flags.items() if value is not None})
    if isinstance(options.get("engine_args"), dict):
        options["engine_args"] = json.dumps(options["engine_args"])
    # Checked here, before Celery starts and long before the model loads.
    settings = worker_settings(**options, concurrency=args.concurrency)
    from worker.app import app

    argv = [
        "worker",
        "--pool=threads",
        f"--hostname={args.hostname or default_hostname(settings)}",
        "--without-mingle",
        "--task-events",
        "--loglevel=INFO",
    ]
    argv += [f"--{key.replace('_', '-')}={value}" for key, value in options.items() if value is not None]
    if settings.concurrency is not None:
        argv.append(f"--concurrency={settings.concurrency}")
    return _celery_worker(app, [*argv, *celery_args])


def _from_config(path: str) -> dict:
    from engines.errors import InvalidRequest
    from worker.llamafactory_config import worker_options

    try:
        return worker_options(path)
    except (OSError, ValueError) as error:  # unreadable, or not YAML
        raise SystemExit(f"inferq worker: {path}: {error}") from None
    except InvalidRequest as error:
        raise SystemExit(f"inferq worker: {path}: {error.field}: {error.message}") from None


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise SystemExit("inferq worker: --engine-args must be a JSON object")
    return value


def _celery_worker(app, argv: list[str]) -> int:
    """`celery worker` with this app, returning its exit code: `app.worker_main` drops it (click hands
    the code back as a return value in non-standalone mode, and Celery's `start` ignores it)."""
    from celery.bin.celery import celery

    celery.params[0].default = app
    try:
        return celery.main(args=argv, standalone_mode=False) or 0
    finally:
        celery.params[0].default = None


def default_hostname(settings: WorkerSettings) -> str:
    pinned = f"-gpu{'-'.join(map(str, settings.gpus))}" if settings.gpus else ""
    return f"{settings.name.replace('/', '-')}{pinned}@{socket.gethostname()}"
