"""The `inferq` entry point: one argparse tree over the worker, producer and local commands."""

from __future__ import annotations

import argparse
import sys

from cli import batch_command, gateway_command, local_commands, producer, status_command, worker_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inferq", description="Queue-driven LLM inference workers.")
    commands = parser.add_subparsers(dest="command", required=True)
    worker_command.add_parser(commands)
    producer.add_parsers(commands)
    status_command.add_parser(commands)
    local_commands.add_parsers(commands)
    gateway_command.add_parser(commands)
    batch_command.add_parser(commands)
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "worker":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "worker":
        return args.handler(args, rest)
    from kombu.exceptions import OperationalError
    from redis.exceptions import RedisError

    try:
        return args.handler(args, rest)
    except RedisError as error:  # after the client's retries: Redis is down, or the URL points nowhere
        print(f"inferq {args.command}: cannot reach Redis ({error})", file=sys.stderr)
        return 1
    except OperationalError as error:  # kombu's, after its retries: RabbitMQ is down, or the URL points nowhere
        print(f"inferq {args.command}: cannot reach the broker ({error})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: what ran was stopped (a stream's job is cancelled), no traceback
        print(file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
