"""Reading an answer's text as it streams: thoughts split off, tool calls parsed, the rest the answer.

Every engine streams raw text; what the text means (a reasoning model's thoughts, a call in the model's
tool format, a forced call's JSON) is read here, once for all engines, by one `SequenceReader` per answer.
`OutputPlan` says how a request's answers are read; `prepare_chat` makes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from engines.pieces import ContentPiece, Piece, ReasoningPiece
from engines.reasoning import ReasoningSplitter
from engines.tool_schemas import NamedToolChoice, ToolCall, ToolChoice
from engines.tools.choice import forced_parser
from engines.tools.formats import FORMATS, ToolFormatName
from engines.tools.parsers import ToolCallParser


@dataclass(frozen=True)
class OutputPlan:
    tool_format: ToolFormatName | None = None  # the model's own calls are parsed in this format
    tool_choice: ToolChoice | None = None  # "required" and named calls are forced, and parsed as such
    parallel_tool_calls: bool = True
    thinks: bool = False  # the template's model writes <think>…</think> first
    thinks_from_the_start: bool = False  # the generation prompt opened the thoughts already

    @property
    def reads_anything(self) -> bool:
        return self.tool_format is not None or self.thinks

    def reader(self) -> SequenceReader:
        return SequenceReader(self)

    def finish_reason(self, engine_reason: str | None, calls: list[ToolCall]) -> str | None:
        """A model that stopped after calling tools finished with "tool_calls" (OpenAI's rule; a call forced by
        name finishes as "stop", as OpenAI's does)."""
        if engine_reason == "stop" and calls and not isinstance(self.tool_choice, NamedToolChoice):
            return "tool_calls"
        return engine_reason


PLAIN = OutputPlan()


class SequenceReader:
    """One answer's text in, its pieces out (engines/pieces.py); remembers the whole for the record."""

    def __init__(self, plan: OutputPlan) -> None:
        self._plan = plan
        self._splitter = ReasoningSplitter(plan.thinks_from_the_start) if plan.thinks else None
        self._parser: ToolCallParser | None = forced_parser(plan.tool_choice)
        if self._parser is None and plan.tool_format is not None:
            self._parser = FORMATS[plan.tool_format].parser()
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self.finished = False

    def feed(self, text: str) -> list[Piece]:
        if not text:
            return []
        if self._splitter is None and self._parser is None:  # a plain answer, read at every token: all content
            self._content.append(text)
            return [ContentPiece(text)]
        pieces = self._splitter.feed(text) if self._splitter is not None else [ContentPiece(text)]
        return self._through_parser(pieces)

    def finish(self) -> list[Piece]:
        """The pieces held back, once the answer has ended; the answer can be read whole after this."""
        if self.finished:
            return []
        self.finished = True
        pieces = self._splitter.finish() if self._splitter is not None else []
        pieces = self._through_parser(pieces)
        if self._parser is not None:
            pieces += self._kept(self._parser.finish())
        return pieces

    @property
    def content(self) -> str:
        text = "".join(self._content)
        return "" if self.tool_calls and not text.strip() else text  # the whitespace around calls is no answer

    @property
    def reasoning(self) -> str | None:
        return "".join(self._reasoning) if self._reasoning else None

    @property
    def tool_calls(self) -> list[ToolCall]:
        calls = self._parser.calls() if self._parser is not None else []
        return calls if self._plan.parallel_tool_calls else calls[:1]

    def _through_parser(self, pieces: list[Piece]) -> list[Piece]:
        out: list[Piece] = []
        for piece in pieces:
            if isinstance(piece, ContentPiece) and self._parser is not None:
                out += self._kept(self._parser.feed(piece.text))
            else:
                out += self._kept([piece])
        return out

    def _kept(self, pieces: list[Piece]) -> list[Piece]:
        kept = []
        for piece in pieces:
            if isinstance(piece, ContentPiece):
                if not piece.text:
                    continue
                self._content.append(piece.text)
            elif isinstance(piece, ReasoningPiece):
                self._reasoning.append(piece.text)
            elif not self._plan.parallel_tool_calls and piece.index > 0:
                continue  # one call at most: a second one is not passed on
            kept.append(piece)
        return kept
