"""What an answer's text turns into once it is read: the answer itself, a reasoning model's thoughts,
and tool calls (a call's start, with its id and name, then its arguments' text in pieces).

Engines stream raw text; engines/output.py reads it into these pieces, which is what streams carry.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ContentPiece:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningPiece:
    text: str


@dataclass(frozen=True, slots=True)
class CallStart:
    index: int  # the call's place among the answer's calls
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class CallArguments:
    index: int
    text: str  # the next piece of the arguments' JSON text


Piece = ContentPiece | ReasoningPiece | CallStart | CallArguments


def held_prefix(text: str, marker: str) -> int:
    """How many characters at the end of `text` could be the start of `marker` (they wait for more text)."""
    for length in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-length:]):
            return length
    return 0
