"""`inferq gateway`: the OpenAI-compatible HTTP gateway and its chat page (gateway/), under uvicorn."""

from __future__ import annotations

import argparse
import importlib.util

from tasks.config import QueueSettings, settings_problems


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "gateway",
        help="serve the OpenAI API and a chat page over the queue",
        description="Stateless: run as many as you like. API keys: INFERQ_GATEWAY_API_KEYS or _API_KEYS_FILE.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    parser.add_argument("--redis-url", help="default: $INFERQ_REDIS_URL or redis://127.0.0.1:6379/0")
    parser.set_defaults(handler=run_gateway)


def run_gateway(args: argparse.Namespace, _: list[str]) -> int:
    missing = [name for name in ("fastapi", "uvicorn") if importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(f"inferq gateway needs `pip install 'inferq[gateway]'` (missing: {', '.join(missing)})")
    import uvicorn
    from pydantic import ValidationError

    from gateway.app import create_app
    from gateway.settings import GatewaySettings

    try:
        queue_settings = QueueSettings(**({"redis_url": args.redis_url} if args.redis_url else {}))
        settings = GatewaySettings()
        settings.key_table()  # a broken keys file fails here, before anything listens
    except ValidationError as exc:
        raise SystemExit(f"inferq gateway: bad settings: {settings_problems(exc)}") from None
    except (OSError, ValueError) as exc:
        raise SystemExit(f"inferq gateway: bad keys: {exc}") from None
    uvicorn.run(
        create_app(queue_settings, settings),
        host=args.host,
        port=args.port,
        # Connections and requests at once: past it, new ones get a 503 instead of slowing everyone.
        limit_concurrency=settings.limit_concurrency,
        timeout_keep_alive=settings.timeout_keep_alive_s,
        # open streams would otherwise hold a stopping gateway for ever; their jobs are not lost
        # (background ones run on, to be resumed through any other gateway)
        timeout_graceful_shutdown=5,
    )
    return 0
