"""The engine contract: the `BaseEngine` every backend implements.

The public surface follows LLaMA-Factory's `chat/base_engine.py` (`chat`, `stream_chat`, `get_scores`,
`Response`), so its users feel at home. What differs: one shared request preparation
(`prepare_chat`: messages, template, parameters, context length) runs before any backend work, every
backend streams `Delta`s from one `generate()` method, and `abort(request_id)` exists.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from engines.errors import InvalidRequest
from engines.params import ResolvedParams, resolve
from engines.prompt import attach_media, build_prompt, check_media, render_conversation
from engines.schemas import (
    Delta,
    FinishReason,
    GenerationParams,
    MediaKind,
    Message,
    Response,
    parse_messages,
    parse_params,
)

__all__ = ["BaseEngine", "ChatRequest", "Delta", "GenerationParams", "Message", "Response", "ResponseBuilder"]


@dataclass(frozen=True)
class ChatRequest:
    """A validated chat request, ready for a backend: prompt tokenised, parameters resolved."""

    request_id: str
    prompt_ids: list[int]
    prompt_text: str
    params: ResolvedParams
    adapter: str | None = None
    images: tuple[str, ...] = ()

    @property
    def prompt_length(self) -> int:
        return len(self.prompt_ids)


class ResponseBuilder:
    """Joins a request's deltas into its `Response`s; the only place that does."""

    def __init__(self, num_sequences: int, prompt_length: int) -> None:
        self.prompt_length = prompt_length
        self._texts: list[list[str]] = [[] for _ in range(num_sequences)]
        self._lengths = [0] * num_sequences
        self._finish: list[FinishReason | None] = [None] * num_sequences

    def add(self, delta: Delta) -> None:
        self._texts[delta.index].append(delta.text)
        self._lengths[delta.index] += len(delta.token_ids)
        if delta.finish_reason is not None:
            self._finish[delta.index] = delta.finish_reason

    @property
    def completion_tokens(self) -> int:
        return sum(self._lengths)

    def responses(self) -> list[Response]:
        """Sequences that never finished (cancel, timeout) report finish_reason "abort"."""
        return [
            Response(
                response_text="".join(texts),
                response_length=length,
                prompt_length=self.prompt_length,
                finish_reason=finish or "abort",
            )
            for texts, length, finish in zip(self._texts, self._lengths, self._finish, strict=True)
        ]


class BaseEngine(ABC):
    """One loaded model behind one backend.

    Subclasses implement `generate`, `abort` and `_score`, and set the attributes below in `__init__`;
    request checking, templating and parameter resolution happen here, once for every backend.
    """

    name: ClassVar[str]
    can_generate: bool
    tokenizer: Any
    context_length: int
    stop_token_ids: tuple[int, ...]
    default_params: GenerationParams
    # Requests the backend runs at once (its batch rows, max sequences, max running requests): what a
    # worker admits, so that jobs wait in the queue, where any worker can take them, not inside one engine.
    capacity: int
    media_kinds: frozenset[MediaKind] = frozenset()
    adapters: frozenset[str] = frozenset()

    def prepare_chat(
        self,
        messages: Sequence[Message | dict[str, Any]],
        system: str | None = None,
        tools: str | list[dict[str, Any]] | None = None,
        images: Sequence[str] | None = None,
        videos: Sequence[str] | None = None,
        audios: Sequence[str] | None = None,
        *,
        request_id: str | None = None,
        adapter: str | None = None,
        **params: Any,
    ) -> ChatRequest:
        """Checks and tokenises a request without touching the model (no GPU work)."""
        if not self.can_generate:
            raise InvalidRequest(f"this {self.name} engine serves a scoring model; use get_scores", field="model")
        parsed = attach_media(parse_messages(messages), images, videos, audios)
        job_params = parse_params(params)
        media = check_media(parsed, self.media_kinds)
        if adapter is not None and adapter not in self.adapters:
            served = ", ".join(sorted(self.adapters)) or "none"
            raise InvalidRequest(f"unknown adapter {adapter!r} (served: {served})", field="adapter")
        prompt_text, prompt_ids = build_prompt(self.tokenizer, parsed, system, tools)
        resolved = resolve(
            job_params,
            self.default_params,
            prompt_length=len(prompt_ids),
            context_length=self.context_length,
            stop_token_ids=self.stop_token_ids,
        )
        return ChatRequest(
            request_id=request_id or uuid.uuid4().hex,
            prompt_ids=prompt_ids,
            prompt_text=prompt_text,
            params=resolved,
            adapter=adapter,
            images=tuple(media.get("image", ())),
        )

    @abstractmethod
    def generate(self, request: ChatRequest) -> AsyncIterator[Delta]:
        """Streams the request's deltas. Closing the iterator early aborts the backend request."""

    @abstractmethod
    async def abort(self, request_id: str) -> None:
        """Ends a running or queued request within one step; its sequences finish with "abort"."""

    @abstractmethod
    async def _score(self, texts: list[str], max_length: int | None) -> list[float]:
        """One score per text, for scoring models."""

    async def close(self) -> None:  # noqa: B027 (a default: an engine that holds nothing has nothing to release)
        """Releases the backend (processes, memory). The engine cannot serve afterwards."""

    async def chat(
        self,
        messages: Sequence[Message | dict[str, Any]],
        system: str | None = None,
        tools: str | list[dict[str, Any]] | None = None,
        images: Sequence[str] | None = None,
        videos: Sequence[str] | None = None,
        audios: Sequence[str] | None = None,
        **params: Any,
    ) -> list[Response]:
        request = self.prepare_chat(messages, system, tools, images, videos, audios, **params)
        builder = ResponseBuilder(request.params.n, request.prompt_length)
        async for delta in self.generate(request):
            builder.add(delta)
        return builder.responses()

    async def stream_chat(
        self,
        messages: Sequence[Message | dict[str, Any]],
        system: str | None = None,
        tools: str | list[dict[str, Any]] | None = None,
        images: Sequence[str] | None = None,
        videos: Sequence[str] | None = None,
        audios: Sequence[str] | None = None,
        **params: Any,
    ) -> AsyncIterator[str]:
        request = self.prepare_chat(messages, system, tools, images, videos, audios, **params)
        if request.params.n > 1:
            raise InvalidRequest("stream_chat streams one sequence; use chat() for n > 1", field="num_return_sequences")
        deltas = self.generate(request)
        try:
            async for delta in deltas:
                if delta.text:
                    yield delta.text
        finally:
            # A consumer that stops reading early must not leave the backend generating.
            await deltas.aclose()

    def render_for_scoring(self, conversation: Sequence[Message | dict[str, Any]]) -> str:
        """A conversation as this model's chat template writes it, to score with `get_scores` (no model work)."""
        return render_conversation(self.tokenizer, parse_messages(conversation))

    async def get_scores(self, batch_input: list[str], **params: Any) -> list[float]:
        if self.can_generate:
            raise InvalidRequest(f"this {self.name} engine serves a generation model; use chat", field="model")
        texts = _parse_texts(batch_input)
        unknown = set(params) - {"max_length"}
        if unknown:
            raise InvalidRequest("unknown scoring parameter", field=sorted(unknown)[0])
        max_length = params.get("max_length")
        if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
            raise InvalidRequest("must be a positive integer", field="max_length")
        return await self._score(texts, max_length)


def _parse_texts(batch_input: Any) -> list[str]:
    if isinstance(batch_input, str) or not isinstance(batch_input, Sequence):
        raise InvalidRequest("must be a list of strings", field="batch_input")
    if not batch_input:
        raise InvalidRequest("must hold at least one text", field="batch_input")
    for i, text in enumerate(batch_input):
        if not isinstance(text, str):
            raise InvalidRequest("must be a string", field=f"batch_input.{i}")
        if not text:
            raise InvalidRequest("must not be empty", field=f"batch_input.{i}")
    return list(batch_input)
