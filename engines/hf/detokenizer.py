"""Token ids to text, one token at a time, equal in the end to decoding all ids at once."""

from __future__ import annotations

from typing import Any


class IncrementalDetokenizer:
    """The prefix/read-offset scheme of TGI and vLLM.

    A token can end in the middle of a UTF-8 character, and SentencePiece drops a leading space at the
    start of a decode; decoding a short window and diffing it against the same window without the
    newest token handles both, and costs two small decodes a token.
    """

    def __init__(self, tokenizer: Any, skip_special_tokens: bool) -> None:
        self._tokenizer = tokenizer
        self._skip_special_tokens = skip_special_tokens
        self._ids: list[int] = []
        self._prefix_offset = 0
        self._read_offset = 0

    def add(self, token_id: int) -> str:
        self._ids.append(token_id)
        prefix_text, window_text = self._decode_window()
        if len(window_text) > len(prefix_text) and not window_text.endswith("\ufffd"):
            self._prefix_offset, self._read_offset = self._read_offset, len(self._ids)
            return window_text[len(prefix_text) :]
        return ""

    def flush(self) -> str:
        """Whatever is still held back (an unfinished character) once the sequence ends."""
        prefix_text, window_text = self._decode_window()
        self._prefix_offset = self._read_offset = len(self._ids)
        return window_text[len(prefix_text) :]

    def _decode_window(self) -> tuple[str, str]:
        decode = self._tokenizer.decode
        skip = self._skip_special_tokens
        prefix_text = decode(self._ids[self._prefix_offset : self._read_offset], skip_special_tokens=skip)
        window_text = decode(self._ids[self._prefix_offset :], skip_special_tokens=skip)
        return prefix_text, window_text
