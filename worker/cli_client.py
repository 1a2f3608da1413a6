"""Producer-side `inferq` commands: chat, submit, score, demo, bench."""

from __future__ import annotations

import argparse


def add_client_parsers(commands: argparse._SubParsersAction) -> None:
    pass
