"""A reasoning model's thoughts, split from its answer: `<think>…</think>` opening an answer is reasoning.

Templates that think (Qwen3, DeepSeek-R1 and their kin) mention `<think>`; some open the tag in the
generation prompt themselves, and the answer then starts inside the thoughts. Partial tags are held back
until they are known, so a thought never leaks into the answer's text, nor the reverse.
"""

from __future__ import annotations

from engines.pieces import ContentPiece, Piece, ReasoningPiece, held_prefix

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"


def template_thinks(chat_template: str) -> bool:
    return OPEN_TAG in chat_template or CLOSE_TAG in chat_template


def prompt_opens_thinking(prompt_text: str) -> bool:
    """The generation prompt already opened the thoughts (the answer starts inside them)."""
    return prompt_text.rstrip().endswith(OPEN_TAG)


class ReasoningSplitter:
    def __init__(self, starts_inside: bool) -> None:
        self._mode = "reasoning" if starts_inside else "opening"
        self._buffer = ""
        # Whitespace right inside the tags and right after </think> is layout, dropped from stream and record
        # alike: leading whitespace is skipped, and trailing whitespace waits to see what follows it.
        self._leading = starts_inside

    def feed(self, text: str) -> list[Piece]:
        self._buffer += text
        pieces: list[Piece] = []
        while self._buffer:
            if self._mode == "opening":
                stripped = self._buffer.lstrip()
                if stripped.startswith(OPEN_TAG):
                    self._mode, self._buffer, self._leading = "reasoning", stripped[len(OPEN_TAG) :], True
                elif OPEN_TAG.startswith(stripped):
                    return pieces  # could still open the thoughts
                else:
                    self._mode = "content"
            elif self._skip_leading_newlines():
                return pieces
            elif self._mode == "reasoning":
                found = self._buffer.find(CLOSE_TAG)
                if found < 0:
                    ready = len(self._buffer) - held_prefix(self._buffer, CLOSE_TAG)
                    ready = len(self._buffer[:ready].rstrip())  # trailing whitespace waits
                    if ready:
                        pieces.append(ReasoningPiece(self._buffer[:ready]))
                    self._buffer = self._buffer[ready:]
                    return pieces
                thought = self._buffer[:found].rstrip()
                if thought:
                    pieces.append(ReasoningPiece(thought))
                self._mode, self._buffer, self._leading = "content", self._buffer[found + len(CLOSE_TAG) :], True
            else:
                pieces.append(ContentPiece(self._buffer))
                self._buffer = ""
        return pieces

    def _skip_leading_newlines(self) -> bool:
        """Drops the newlines opening the thoughts or the answer; True when nothing else is there yet."""
        if not self._leading:
            return False
        self._buffer = self._buffer.lstrip()
        if not self._buffer:
            return True
        self._leading = False
        return False

    def finish(self) -> list[Piece]:
        """What was held: unfinished thoughts are thoughts; an unopened tag was text."""
        held, self._buffer = self._buffer, ""
        if not held:
            return []
        return [ReasoningPiece(held)] if self._mode == "reasoning" else [ContentPiece(held)]
