"""Producer-side `inferq` commands: chat (interactive), submit, score. None needs torch."""

from __future__ import annotations

import argparse
import json
import sys

from engines.errors import InferqError
from tasks.config import QueueSettings, settings_problems


def add_parsers(commands: argparse._SubParsersAction) -> None:
    chat = commands.add_parser("chat", help="talk to a served model, streaming (`clear`, `exit`)")
    _common(chat)
    _sampling(chat)
    chat.add_argument("--system", help="system prompt")
    chat.set_defaults(handler=run_chat)

    submit = commands.add_parser("submit", help="enqueue one chat job; stream it and print its record")
    _common(submit)
    _sampling(submit)
    submit.add_argument("prompt", help="the user message")
    submit.add_argument("--system", help="system prompt")
    submit.add_argument("--priority", type=int, help="0 (highest) to 9")
    submit.add_argument("--deadline", type=float, metavar="SECONDS", help="expire the job after this long")
    submit.add_argument("--no-wait", action="store_true", help="print the job id and return")
    submit.set_defaults(handler=run_submit)

    score = commands.add_parser("score", help="score texts with a served reward model")
    _common(score)
    score.add_argument("texts", nargs="+")
    score.add_argument("--max-length", type=int)
    score.set_defaults(handler=run_score)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="served model name (a worker's --name)")
    parser.add_argument("--redis-url", help="default: $INFERQ_REDIS_URL or redis://127.0.0.1:6379/0")
    parser.add_argument("--timeout", type=float, help="seconds to wait for an answer")


def _sampling(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--top-p", type=float)
    parser.add_argument("--max-new-tokens", type=int)
    parser.add_argument("--stop", action="append", help="stop string (repeatable)")
    parser.add_argument("--seed", type=int)


def _params(args: argparse.Namespace) -> dict:
    names = ("temperature", "top_p", "max_new_tokens", "stop", "seed")
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def queue_settings(args: argparse.Namespace) -> QueueSettings:
    """A command's --redis-url (else INFERQ_*), or a one-line settings error."""
    from pydantic import ValidationError

    try:
        return QueueSettings(**({"redis_url": args.redis_url} if args.redis_url else {}))
    except ValidationError as exc:
        raise SystemExit(f"inferq {args.command}: bad settings: {settings_problems(exc)}") from None


def client_for(args: argparse.Namespace):
    """The sync client for a command's settings."""
    from api_client import InferQClient

    return InferQClient(model=getattr(args, "model", None), settings=queue_settings(args))


def run_chat(args: argparse.Namespace, _: list[str]) -> int:
    messages: list[dict[str, str]] = []
    print("Welcome to inferq chat. `clear` forgets the history, `exit` leaves.")
    with client_for(args) as client:
        while True:
            try:
                query = input("\nUser: ")
            except (EOFError, KeyboardInterrupt):
                print()
                return 0
            if query.strip() == "exit":
                return 0
            if query.strip() == "clear":
                messages = []
                print("History has been removed.")
                continue
            messages.append({"role": "user", "content": query})
            print("Assistant: ", end="", flush=True)
            answer = ""
            try:
                for piece in client.stream_chat(messages, system=args.system, timeout=args.timeout, **_params(args)):
                    print(piece, end="", flush=True)
                    answer += piece
            except InferqError as error:
                print(f"\n[{type(error).__name__}] {error}")
                messages.pop()
                continue
            print()
            messages.append({"role": "assistant", "content": answer})


def run_submit(args: argparse.Namespace, _: list[str]) -> int:
    with client_for(args) as client:
        try:
            handle = client.submit_chat(
                [{"role": "user", "content": args.prompt}],
                system=args.system,
                priority=args.priority,
                deadline_s=args.deadline,
                **_params(args),
            )
            if args.no_wait:
                print(handle.id)
                return 0
            for piece in handle.stream(timeout=args.timeout):
                print(piece, end="", flush=True)
            print()
            print(handle.result(args.timeout).model_dump_json(indent=2))
        except InferqError as error:
            return _fail(error)
    return 0


def run_score(args: argparse.Namespace, _: list[str]) -> int:
    with client_for(args) as client:
        try:
            scores = client.get_scores(args.texts, max_length=args.max_length, timeout=args.timeout)
        except InferqError as error:
            return _fail(error)
    # in order, one entry a text: the same text given twice is scored twice (a dict by text kept one)
    scored = [{"text": text, "score": score} for text, score in zip(args.texts, scores, strict=True)]
    print(json.dumps(scored, indent=2, ensure_ascii=False))
    return 0


def _fail(error: InferqError) -> int:
    record = getattr(error, "record", None)
    if record is not None:
        print(record.model_dump_json(indent=2))
    print(f"inferq: {type(error).__name__}: {error}", file=sys.stderr)
    return 1
