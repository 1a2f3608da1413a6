"""Joins a request's deltas into its `Response`s: the only place that does.

Each of the request's n answers is read as it streams (engines/output.py: thoughts split off, tool calls
parsed), so `add` hands back what a delta meant, for streaming, and `responses` the whole answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engines.logprobs import TokenLogprob
from engines.output import PLAIN, OutputPlan, SequenceReader
from engines.pieces import Piece
from engines.schemas import Delta, FinishReason, Response

if TYPE_CHECKING:
    from engines.base import ChatRequest


@dataclass
class _Answer:
    reader: SequenceReader
    length: int = 0
    finish: FinishReason | None = None
    logprobs: list[TokenLogprob] = field(default_factory=list)


class ResponseBuilder:
    def __init__(
        self, num_sequences: int, prompt_length: int, plan: OutputPlan = PLAIN, *, logprobs: bool = False
    ) -> None:
        self.prompt_length = prompt_length
        self._plan = plan
        self._logprobs = logprobs
        self._answers = [_Answer(plan.reader()) for _ in range(num_sequences)]

    @classmethod
    def for_request(cls, request: ChatRequest) -> ResponseBuilder:
        return cls(
            request.params.n, request.prompt_length, request.output, logprobs=request.params.logprobs is not None
        )

    def add(self, delta: Delta) -> list[Piece]:
        """Takes one delta; returns what it added to its answer, read (held-back text comes later)."""
        answer = self._answers[delta.index]
        answer.length += len(delta.token_ids)
        answer.logprobs += delta.logprobs
        pieces = answer.reader.feed(delta.text)
        if delta.finish_reason is not None:
            pieces += answer.reader.finish()
            answer.finish = delta.finish_reason
        return pieces

    def finish_reason(self, index: int) -> FinishReason | None:
        """Answer `index`'s finish reason as its caller sees it (a model that called tools: "tool_calls")."""
        answer = self._answers[index]
        return self._plan.finish_reason(answer.finish, answer.reader.tool_calls)

    @property
    def completion_tokens(self) -> int:
        return sum(answer.length for answer in self._answers)

    def responses(self) -> list[Response]:
        """Answers that never finished (cancel, timeout) report finish_reason "abort"."""
        responses = []
        for index, answer in enumerate(self._answers):
            answer.reader.finish()  # a cut-off answer's held text is its text
            calls = answer.reader.tool_calls
            responses.append(
                Response(
                    response_text=answer.reader.content,
                    response_length=answer.length,
                    prompt_length=self.prompt_length,
                    finish_reason=self.finish_reason(index) or "abort",
                    tool_calls=calls or None,
                    reasoning_text=answer.reader.reasoning,
                    logprobs=answer.logprobs if self._logprobs else None,
                )
            )
        return responses
