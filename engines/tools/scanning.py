"""Reading a tool call's JSON while it is being written, one piece of text at a time.

A streamed tool call is sent as its name (once it is whole) and then its arguments' raw text, piece by
piece, as the model writes them; concatenated, the pieces are exactly the arguments JSON the model wrote.
These scanners keep their place in the text, so a long call costs one pass, not one pass per token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_STRING_VALUE = re.compile(r'\s*"((?:[^"\\]|\\.)*)"')  # a JSON string value, the whitespace before it


class _Strings:
    """Whether a JSON reader is inside a string, fed one character at a time (escapes included)."""

    def __init__(self) -> None:
        self.inside = False
        self._escaped = False

    def closes(self, char: str) -> bool:
        """Reads one character inside a string: True when it is the closing quote."""
        if self._escaped:
            self._escaped = False
        elif char == "\\":
            self._escaped = True
        elif char == '"':
            self.inside = False
            return True
        return False


class JsonValueEnd:
    """Finds where one JSON value ends in a growing text, keeping its place between feeds."""

    def __init__(self) -> None:
        self.position = 0  # how far the text has been read
        self.start: int | None = None  # the value's first character (after any whitespace), once seen
        self.end: int | None = None  # one past the value's last character, once it is whole
        self._depth = 0
        self._kind: str | None = None  # "nest" ({ or [), "string", "literal" (number, true, false, null)
        self._strings = _Strings()

    def read(self, text: str) -> None:
        while self.end is None and self.position < len(text):
            char = text[self.position]
            if self._kind is None:
                if char.isspace():
                    self.position += 1
                    continue
                self.start = self.position
                self._kind = "nest" if char in "{[" else "string" if char == '"' else "literal"
                if self._kind == "string":
                    self._strings.inside = True
                    self.position += 1
                    continue
            if self._strings.inside:
                if self._strings.closes(char) and self._kind == "string":
                    self.end = self.position + 1
            elif self._kind == "literal" and (char in ",}]" or char.isspace()):
                self.end = self.position
                return
            elif char == '"':
                self._strings.inside = True
            elif char in "{[":
                self._depth += 1
            elif char in "}]":
                self._depth -= 1
                if self._depth == 0:
                    self.end = self.position + 1
            self.position += 1


class TopLevelKeys:
    """Where the value of each top-level key of one growing JSON object starts, keeping its place between
    feeds. Keys inside nested values (an argument called `name`) are not the object's own."""

    def __init__(self) -> None:
        self.position = 0
        self.values: dict[str, int] = {}  # a top-level key -> where its value starts (just past the colon)
        self._depth = 0
        self._strings = _Strings()
        self._string_start = 0
        self._expects_key = False
        self._key: str | None = None  # a top-level key read, its colon not yet

    def read(self, text: str) -> None:
        while self.position < len(text):
            char = text[self.position]
            if self._strings.inside:
                if self._strings.closes(char) and self._depth == 1 and self._expects_key:
                    self._key = text[self._string_start + 1 : self.position]
                    self._expects_key = False
            elif char == '"':
                self._strings.inside, self._string_start = True, self.position
            elif char in "{[":
                self._depth += 1
                self._expects_key = self._depth == 1 and char == "{"
            elif char in "}]":
                self._depth -= 1
            elif char == "," and self._depth == 1:
                self._expects_key = True
            elif char == ":" and self._depth == 1 and self._key is not None:
                self.values.setdefault(self._key, self.position + 1)
                self._key = None
            self.position += 1


@dataclass
class CallObjectScanner:
    """One call object, `{"name": ..., "arguments": {...}}` (or `"parameters"`), as its text grows: the name
    once it is whole, then the arguments' raw text as it arrives. Only the object's own top-level keys
    count. Arguments written before the name are held until the name is known (a call's first delta
    carries its name). `needs_arguments`: an object without an arguments key is no call (where bare JSON
    may be a call or an answer, Llama 3's `{"name": "Bob", "age": 3}` is an answer); the name is then held
    until the arguments key shows."""

    argument_keys: tuple[str, ...] = ("arguments", "parameters")
    needs_arguments: bool = False
    text: str = ""
    name: str | None = None
    arguments_sent: int = 0
    _arguments_start: int | None = None
    _keys: TopLevelKeys = field(default_factory=TopLevelKeys)
    _arguments_end: JsonValueEnd = field(default_factory=JsonValueEnd)
    _name_told: bool = False

    def feed(self, more: str) -> tuple[str | None, str]:
        """Returns (the name, if it became known now; the arguments' text that arrived, if the name is known)."""
        self.text += more
        self._keys.read(self.text)
        if self.name is None and "name" in self._keys.values:
            if match := _STRING_VALUE.match(self.text, self._keys.values["name"]):
                self.name = match.group(1)
        if self._arguments_start is None:
            self._arguments_start = min(
                (self._keys.values[key] for key in self.argument_keys if key in self._keys.values), default=None
            )
        new_name = None
        if (
            self.name is not None
            and not self._name_told
            and (self._arguments_start is not None or not self.needs_arguments)
        ):
            self._name_told, new_name = True, self.name
        if not self._name_told or self._arguments_start is None:
            return new_name, ""
        value = self.text[self._arguments_start :]
        self._arguments_end.read(value)
        if self._arguments_end.start is None:
            return new_name, ""  # only whitespace so far
        readable = self._arguments_end.end if self._arguments_end.end is not None else self._arguments_end.position
        piece = value[max(self.arguments_sent, self._arguments_end.start) : readable]
        self.arguments_sent = readable
        return new_name, piece

    @property
    def is_call(self) -> bool:
        """Whether the object, as far as it was read, is a call (else its text is the answer's)."""
        return self.name is not None and (self._arguments_start is not None or not self.needs_arguments)

    @property
    def arguments(self) -> str:
        """The arguments' text read so far (all of it, once the object is whole); `{}` when there were none."""
        if self._arguments_start is None or self._arguments_end.start is None:
            return "{}"
        return self.text[self._arguments_start :][self._arguments_end.start : self.arguments_sent] or "{}"
