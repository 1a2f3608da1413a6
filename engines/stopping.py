"""Stop strings on streamed text, with OpenAI semantics: the stop string ends the answer and is not part of it.

Engines whose backend has no stop strings (transformers' step loop) run their text through this; vLLM
and SGLang stop natively with the same semantics.
"""

from __future__ import annotations

from collections.abc import Sequence


class StopStringMatcher:
    """Finds the first stop string in a stream of text pieces.

    Text that could still turn into a stop string is held back, so a streamed delta never shows the
    beginning of a stop string that a later token completes.
    """

    def __init__(self, stop: Sequence[str]) -> None:
        self._stop = tuple(stop)
        self._longest_hold = max((len(s) for s in self._stop), default=1) - 1
        self._held = ""

    def feed(self, text: str, can_stop: bool = True) -> tuple[str, bool]:
        """Returns (text safe to emit, whether a stop string was found). While the answer may not stop yet
        (`min_tokens`), a whole stop string is text like any other, but a possible beginning is still held: a
        stop string that begins before the answer may stop and ends after it is found, as vLLM finds it."""
        if not self._stop:  # most requests: nothing to find, nothing held (a step's text, every token)
            return text, False
        pending = self._held + text
        # Only a stop that ends in the new text: one whole inside the held text lay before the answer could stop
        # (a stop found there earlier would have stopped it then).
        after = len(self._held)
        hits = (
            [i for i in (pending.find(s, max(0, after - len(s) + 1)) for s in self._stop) if i >= 0] if can_stop else []
        )
        if hits:
            self._held = ""
            return pending[: min(hits)], True
        hold = self._hold_length(pending)
        self._held = pending[len(pending) - hold :]
        return pending[: len(pending) - hold], False

    def flush(self) -> str:
        """The held-back tail, once the stream ends without a stop string."""
        held, self._held = self._held, ""
        return held

    def _hold_length(self, text: str) -> int:
        for length in range(min(self._longest_hold, len(text)), 0, -1):
            tail = text[-length:]
            if any(s.startswith(tail) for s in self._stop):
                return length
        return 0
