"""Tool calls read out of a model's text as it streams, one parser per family of formats.

- `TaggedParser`: calls in tags, `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` (Hermes, Qwen 2.5
  and 3, and every template without a tool format of its own: inferq prompts those in this format);
- `JsonCallsParser`: bare JSON calls after an optional marker: Llama 3.1/3.2 (`{"name": ..., "parameters":
  {...}}`, optionally after `<|python_tag|>`, several joined by `;`), Mistral's older array (`[TOOL_CALLS]
  [{...}, ...]`, for `MistralParser`),
  and the array a `tool_choice: "required"` grammar forces (`[{"name": ..., "parameters": {...}}]`);
- `MistralParser`: `[TOOL_CALLS]` then a JSON array (before Mistral's v11 tokenizer) or `name[ARGS]{...}`
  (from v11: Mistral Small 3.1/3.2, Magistral, Devstral);
- `ReActParser`: LLaMA-Factory's default format, `Action: name` then `Action Input: {...}`;
- `NamedCallParser`: a forced call of one named function, whose whole output is its arguments.

Each turns text into pieces (engines/pieces.py): the answer's own text, and each call's start (id, name)
then its arguments' text as it arrives; `finish()` ends the text and `calls()` gives the whole calls.
Text that merely starts like a marker is held until it is known not to be one.
"""

from __future__ import annotations

import json
import re
import uuid
from abc import ABC, abstractmethod

from engines.pieces import CallArguments, CallStart, ContentPiece, Piece, held_prefix
from engines.tool_schemas import ToolCall
from engines.tools.scanning import CallObjectScanner, JsonValueEnd

_SEPARATORS = " \n\t;,[]"  # what may stand between bare JSON calls (Llama's `;`, a JSON array's)


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


class ToolCallParser(ABC):
    def __init__(self) -> None:
        self._calls: list[ToolCall] = []
        self._scanner: CallObjectScanner | None = None
        self._started = 0  # calls whose start was handed out
        self._current_id = ""

    @abstractmethod
    def feed(self, text: str) -> list[Piece]:
        """The pieces `text` completes (some of it may be held back, waiting for more)."""

    @abstractmethod
    def finish(self) -> list[Piece]:
        """The pieces still held, once the text has ended."""

    def calls(self) -> list[ToolCall]:
        return list(self._calls)

    # -- one call at a time --------------------------------------------------------------------

    def _open_call(self, needs_arguments: bool = False) -> None:
        self._scanner = CallObjectScanner(needs_arguments=needs_arguments)

    def _feed_call(self, text: str) -> list[Piece]:
        name, arguments = self._scanner.feed(text)
        pieces: list[Piece] = []
        if name is not None:
            self._current_id = new_call_id()
            pieces.append(CallStart(self._started, self._current_id, name))
            self._started += 1
        if arguments:
            pieces.append(CallArguments(self._started - 1, arguments))
        return pieces

    def _close_call(self, raw: str) -> list[Piece]:
        """Ends the open call; one that never had a name is no call: its text (`raw`) is the answer's."""
        scanner, self._scanner = self._scanner, None
        if not scanner.is_call:
            return [ContentPiece(raw)] if raw else []
        self._calls.append(ToolCall(id=self._current_id, name=scanner.name, arguments=scanner.arguments))
        return []


class TaggedParser(ToolCallParser):
    def __init__(self, start: str = "<tool_call>", end: str = "</tool_call>") -> None:
        super().__init__()
        self._start, self._end = start, end
        self._buffer = ""

    def feed(self, text: str) -> list[Piece]:
        self._buffer += text
        pieces: list[Piece] = []
        while True:
            marker = self._end if self._scanner is not None else self._start
            found = self._buffer.find(marker)
            if found < 0:
                ready = len(self._buffer) - held_prefix(self._buffer, marker)
                pieces += self._take(self._buffer[:ready])
                self._buffer = self._buffer[ready:]
                return pieces
            pieces += self._take(self._buffer[:found])
            self._buffer = self._buffer[found + len(marker) :]
            if self._scanner is None:
                self._open_call()
            else:
                pieces += self._close_call(f"{self._start}{self._scanner.text}{self._end}")

    def finish(self) -> list[Piece]:
        pieces = self._take(self._buffer)
        self._buffer = ""
        if self._scanner is not None:  # cut off before its end tag (max tokens, a stop string): still a call
            pieces += self._close_call(f"{self._start}{self._scanner.text}")
        return pieces

    def _take(self, text: str) -> list[Piece]:
        if not text:
            return []
        if self._scanner is not None:
            return self._feed_call(text)
        return [ContentPiece(text)]


class JsonCallsParser(ToolCallParser):
    """`marker` starts the calls (text before it is the answer's); without one, the calls are the output
    itself when it opens with `{` or `[` (`required` forces that; Llama decides with its first character).
    `optional_prefix` (Llama's `<|python_tag|>`) may come first and is dropped."""

    def __init__(
        self, marker: str | None = None, *, optional_prefix: str | None = None, always_calls: bool = False
    ) -> None:
        super().__init__()
        self._marker = marker
        self._optional_prefix = optional_prefix
        self._mode = "calls" if always_calls else "undecided"
        # Bare JSON that may be the answer itself (Llama 3): only an object with arguments is a call.
        self._maybe_answer = marker is None and not always_calls
        self._buffer = ""
        self._between = ""  # what was skipped since the last object: the answer's, if that was no call
        self._object_end: JsonValueEnd | None = None

    def feed(self, text: str) -> list[Piece]:
        self._buffer += text
        pieces: list[Piece] = []
        if self._mode == "undecided":
            pieces += self._decide()
        if self._mode == "calls":
            pieces += self._read_calls()
        elif self._mode == "content":
            pieces += self._read_content()
        return pieces

    def finish(self) -> list[Piece]:
        pieces: list[Piece] = []
        if self._mode == "undecided":
            self._mode = "content"
        if self._mode == "content":
            pieces += [ContentPiece(self._buffer)] if self._buffer else []
        elif self._scanner is not None:  # cut off inside a call
            pieces += self._close_call(self._unclaimed(self._scanner.text))
        elif self._calls:
            if self._buffer.strip(_SEPARATORS):
                pieces.append(ContentPiece(self._buffer))  # something after the calls that is no call
        elif self._between + self._buffer:
            pieces.append(ContentPiece(self._between + self._buffer))  # nothing was a call: kept whole
        self._buffer = self._between = ""
        return pieces

    def _decide(self) -> list[Piece]:
        if self._marker is not None:
            self._mode = "content"
            return []
        stripped = self._buffer.lstrip()
        if not stripped:
            return []
        prefix = self._optional_prefix or ""
        if prefix and prefix.startswith(stripped) and len(stripped) < len(prefix):
            return []  # could still be the prefix
        if prefix and stripped.startswith(prefix):
            stripped = stripped[len(prefix) :].lstrip()
            if not stripped:
                return []
        if stripped[0] == "[":
            inside = stripped[1:].lstrip()
            if not inside:
                return []  # a list of calls, or "[1] Smith et al.": the next character says
            if inside[0] != "{":
                self._mode = "content"  # a citation, a link, a list: streamed as it comes, not held to the end
                return []
        if stripped[0] in "{[":
            self._mode, self._buffer = "calls", stripped
        else:
            self._mode = "content"
        return []

    def _read_content(self) -> list[Piece]:
        if self._marker is None:
            text, self._buffer = self._buffer, ""
            return [ContentPiece(text)] if text else []
        found = self._buffer.find(self._marker)
        if found < 0:
            ready = len(self._buffer) - held_prefix(self._buffer, self._marker)
            text, self._buffer = self._buffer[:ready], self._buffer[ready:]
            return [ContentPiece(text)] if text else []
        text, self._buffer = self._buffer[:found], self._buffer[found + len(self._marker) :]
        self._mode = "calls"
        return ([ContentPiece(text)] if text else []) + self._read_calls()

    def _read_calls(self) -> list[Piece]:
        pieces: list[Piece] = []
        while self._buffer:
            if self._scanner is None:
                skipped = len(self._buffer) - len(self._buffer.lstrip(_SEPARATORS))
                self._between += self._buffer[:skipped]
                self._buffer = self._buffer[skipped:]
                if not self._buffer or self._buffer[0] != "{":
                    return pieces  # between calls, or something that is no call (finish() decides)
                self._open_call(needs_arguments=self._maybe_answer)
                self._object_end = JsonValueEnd()
            self._object_end.read(self._buffer)
            end = self._object_end.end
            readable = self._buffer[: end if end is not None else self._object_end.position]
            pieces += self._feed_call(readable)
            self._buffer = self._buffer[len(readable) :]
            self._object_end.position -= len(readable)  # its place, in the text that is left
            if end is None:
                return pieces
            pieces += self._close_call(self._unclaimed(self._scanner.text))
            self._between = ""
        return pieces

    def _unclaimed(self, text: str) -> str:
        """An object's text as the answer's, should it be no call: with what stood before it while nothing
        was a call (a JSON array's brackets and commas), without it after calls (their separators)."""
        return text if self._calls else self._between + text


class MistralParser(ToolCallParser):
    """`[TOOL_CALLS]`, then the calls as Mistral's tokenizer version writes them: a JSON array (before v11:
    Mistral 7B v0.3, Nemo), or from v11 on (Mistral Small 3.1/3.2, Magistral, Devstral) `name[ARGS]{...}`, a
    marker before each call and `[CALL_ID]id` before `[ARGS]` in some, as vLLM's Mistral parser reads both."""

    _MARKER, _ARGS, _CALL_ID = "[TOOL_CALLS]", "[ARGS]", "[CALL_ID]"

    def __init__(self) -> None:
        super().__init__()
        self._buffer = ""
        self._state = "content"  # content, after-marker, name, arguments, after-call
        self._array: JsonCallsParser | None = None  # the pre-v11 array, read by the JSON parser
        self._name = ""
        self._arguments: JsonValueEnd | None = None
        self._arguments_text = ""

    def feed(self, text: str) -> list[Piece]:
        if self._array is not None:
            return self._array.feed(text)
        self._buffer += text
        return self._read()

    def finish(self) -> list[Piece]:
        if self._array is not None:
            return self._array.finish()
        pieces: list[Piece] = []
        if self._state == "arguments":  # cut off inside its arguments (max tokens): still a call
            pieces += self._arguments_piece(self._buffer)
            self._end_call()
        elif self._state in ("after-marker", "name"):
            pieces.append(ContentPiece(self._MARKER + self._buffer))  # a marker and no call: its text, as written
        elif self._buffer.strip():
            pieces.append(ContentPiece(self._buffer))
        self._buffer, self._name = "", ""
        return pieces

    def calls(self) -> list[ToolCall]:
        return self._array.calls() if self._array is not None else super().calls()

    def _read(self) -> list[Piece]:
        pieces: list[Piece] = []
        while True:
            if self._state == "after-call":
                stripped = self._buffer.lstrip()  # the whitespace between calls, or before text after them
                if not stripped.startswith(self._MARKER) and held_prefix(stripped, self._MARKER) == len(stripped):
                    return pieces  # nothing yet, or what may still be the next call's marker
                self._state, self._buffer = "content", stripped
            if self._state == "content":
                found = self._buffer.find(self._MARKER)
                if found < 0:
                    ready = len(self._buffer) - held_prefix(self._buffer, self._MARKER)
                    if ready:
                        pieces.append(ContentPiece(self._buffer[:ready]))
                        self._buffer = self._buffer[ready:]
                    return pieces
                if found:
                    pieces.append(ContentPiece(self._buffer[:found]))
                self._state, self._buffer = "after-marker", self._buffer[found + len(self._MARKER) :]
            if self._state == "after-marker":
                stripped = self._buffer.lstrip()
                if not stripped:
                    return pieces
                if stripped[0] in "[{":  # before v11: a JSON array of calls, the JSON parser's to read
                    self._array = JsonCallsParser(self._MARKER)
                    return pieces + self._array.feed(self._MARKER + self._buffer)
                self._state, self._buffer = "name", stripped
            if self._state == "name":
                ends = [i for i in (self._buffer.find(self._ARGS), self._buffer.find(self._CALL_ID)) if i >= 0]
                if not ends:
                    return pieces
                self._name = self._buffer[: min(ends)].strip()
                found = self._buffer.find(self._ARGS)
                if found < 0:
                    return pieces  # its [CALL_ID]'s id is still coming
                self._buffer = self._buffer[found + len(self._ARGS) :]
                self._current_id = new_call_id()
                pieces.append(CallStart(self._started, self._current_id, self._name))
                self._started += 1
                self._state, self._arguments, self._arguments_text = "arguments", JsonValueEnd(), ""
            if self._state == "arguments":
                self._arguments.read(self._buffer)
                end = self._arguments.end
                readable = self._buffer[: end if end is not None else self._arguments.position]
                pieces += self._arguments_piece(readable)
                self._buffer = self._buffer[len(readable) :]
                self._arguments.position -= len(readable)
                if end is None:
                    return pieces
                self._end_call()
                self._state = "after-call"

    def _arguments_piece(self, text: str) -> list[Piece]:
        if not self._arguments_text:
            text = text.lstrip()  # the whitespace before the object is not the arguments'
        self._arguments_text += text
        return [CallArguments(self._started - 1, text)] if text else []

    def _end_call(self) -> None:
        self._calls.append(ToolCall(id=self._current_id, name=self._name, arguments=self._arguments_text or "{}"))
        self._name, self._arguments = "", None


class ReActParser(ToolCallParser):
    """`Action: name` then `Action Input: {json}`, as LLaMA-Factory's default tool format writes calls."""

    _ACTION = "Action:"
    _INPUT = re.compile(r"\s*Action Input:\s*")

    def __init__(self) -> None:
        super().__init__()
        self._buffer = ""
        self._name: str | None = None
        self._arguments_end: JsonValueEnd | None = None

    def feed(self, text: str) -> list[Piece]:
        self._buffer += text
        pieces: list[Piece] = []
        while True:
            if self._name is None and self._scanner is None:
                found = self._buffer.find(self._ACTION)
                if found < 0:
                    ready = len(self._buffer) - held_prefix(self._buffer, self._ACTION)
                    pieces += [ContentPiece(self._buffer[:ready])] if ready else []
                    self._buffer = self._buffer[ready:]
                    return pieces
                pieces += [ContentPiece(self._buffer[:found])] if found else []
                self._buffer = self._buffer[found + len(self._ACTION) :]
                self._open_call()
            if self._name is None:
                match = self._INPUT.search(self._buffer)
                if match is None or match.end() == len(self._buffer):
                    return pieces  # the input's first character decides
                if self._buffer[match.end()] != "{":
                    # No JSON object of arguments: as LLaMA-Factory's extractor, the text is the answer's.
                    pieces.append(ContentPiece(self._ACTION + self._buffer[: match.end()]))
                    self._buffer, self._scanner = self._buffer[match.end() :], None
                    continue
                self._name = self._buffer[: match.start()].strip()
                self._buffer = self._buffer[match.end() :]
                pieces += self._feed_call(f'{{"name": {json.dumps(self._name)}, "arguments": ')
                self._arguments_end = JsonValueEnd()
            self._arguments_end.read(self._buffer)
            end = self._arguments_end.end
            readable = self._buffer[: end if end is not None else self._arguments_end.position]
            pieces += self._feed_call(readable)
            self._buffer = self._buffer[len(readable) :]
            self._arguments_end.position -= len(readable)
            if end is None:
                return pieces
            pieces += self._close_call(self._scanner.text)
            self._name = None

    def finish(self) -> list[Piece]:
        pieces: list[Piece] = []
        if self._scanner is not None and self._name is not None:
            pieces += self._close_call(self._scanner.text)
        elif self._scanner is not None:  # "Action:" with no input after it: no call
            self._scanner = None
            pieces.append(ContentPiece(self._ACTION + self._buffer))
            self._buffer = ""
        if self._buffer:
            pieces.append(ContentPiece(self._buffer))
        self._buffer, self._name = "", None
        return pieces


class NamedCallParser(ToolCallParser):
    """`tool_choice` named one function: the output is its arguments, and nothing else."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name
        self._id = new_call_id()
        self._arguments = ""

    def feed(self, text: str) -> list[Piece]:
        pieces: list[Piece] = []
        if not self._started:
            self._started = 1
            pieces.append(CallStart(0, self._id, self._name))
        if text:
            self._arguments += text
            pieces.append(CallArguments(0, text))
        return pieces

    def finish(self) -> list[Piece]:
        pieces = self.feed("") if not self._started else []
        self._calls = [ToolCall(id=self._id, name=self._name, arguments=self._arguments.strip() or "{}")]
        return pieces
