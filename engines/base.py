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
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from engines.constraints import DecodingConstraint
from engines.errors import InvalidRequest
from engines.media import MediaPolicy, load_image
from engines.output import PLAIN, OutputPlan
from engines.params import ResolvedParams, resolve
from engines.pieces import ContentPiece
from engines.prompt import attach_media, build_prompt, check_media, render_conversation
from engines.reasoning import prompt_opens_thinking
from engines.response_builder import ResponseBuilder
from engines.schemas import (
    Delta,
    GenerationParams,
    MediaKind,
    Message,
    Response,
    parse_messages,
    parse_params,
)
from engines.tool_schemas import parse_tools
from engines.tools.choice import check_choice, forced_constraint
from engines.tools.formats import FORMATS, ToolFormatName

__all__ = ["BaseEngine", "ChatRequest", "Delta", "GenerationParams", "Message", "Response", "ResponseBuilder"]

# Parameters a backend may be unable to honour; each engine lists the ones it refuses (by name).
OPTIONAL_PARAMS = (
    "logprobs",
    "presence_penalty",
    "frequency_penalty",
    "min_p",
    "logit_bias",
    "ignore_eos",
    "min_tokens",
    "response_format",
)


@dataclass(frozen=True)
class ChatRequest:
    """A validated chat request, ready for a backend: prompt tokenised, parameters resolved."""

    request_id: str
    prompt_ids: list[int]
    prompt_text: str
    params: ResolvedParams
    adapter: str | None = None
    images: tuple[Any, ...] = ()  # the request's images, loaded (PIL), in prompt order
    output: OutputPlan = PLAIN  # how its text is read: thoughts, tool calls (engines/output.py)
    model_inputs: Any = None  # what the backend's processor made of the images (the HF engine's pixel values)
    # Lower runs first (inferq's 0-9, vLLM's convention): a worker gives its job's queue priority, so that a
    # chat beside a batch's rows is admitted first and its prefill does not wait behind their decode steps.
    priority: int = 0

    @property
    def prompt_length(self) -> int:
        return len(self.prompt_ids)


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
    default_adapter: str | None = None  # what a request that names no adapter gets
    vocab_size: int | None = None  # for checking logit_bias's token ids
    # How the model writes tool calls and whether it thinks first: read off its chat template once loaded
    # (engines/prompt.py: output_habits), unless the worker's engine args say.
    tool_format: ToolFormatName | None = "hermes"  # None: the model's calls are in a syntax inferq cannot read
    thinks: bool = False
    # Parameters this backend cannot honour (from OPTIONAL_PARAMS, or a forced tool_choice): refused by name.
    refused_params: frozenset[str] = frozenset()
    media_policy: MediaPolicy = MediaPolicy()  # where images may come from (engines/media.py)

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
        priority: int = 0,
        **params: Any,
    ) -> ChatRequest:
        """Checks and tokenises a request without touching the model (no GPU work)."""
        if not self.can_generate:
            raise InvalidRequest(f"this {self.name} engine serves a scoring model; use get_scores", field="model")
        parsed = attach_media(parse_messages(messages), images, videos, audios)
        job_params = parse_params(params)
        self._refuse_what_cannot_be_honoured(job_params)
        media = check_media(parsed, self.media_kinds)
        adapter = self._served_adapter(adapter)
        tool_list = parse_tools(tools)
        choice = job_params.tool_choice
        check_choice(choice, tool_list)
        offered = tool_list if tool_list and choice != "none" else None
        parallel = job_params.parallel_tool_calls is not False
        if offered and self.tool_format is None:
            raise InvalidRequest(
                "this model's chat template writes tool calls in a syntax inferq has no parser for; its worker's "
                "engine_args.tool_format may name one the model follows (hermes, llama3_json, mistral, react)",
                field="tools",
            )
        # With no tools offered, the format only writes past calls fed back, which such a template renders itself.
        tool_format = self.tool_format or "hermes"
        prompt_text, prompt_ids = build_prompt(self.tokenizer, parsed, system, offered, tool_format)
        images = tuple(load_image(ref, self.media_policy, field) for ref, field in media.get("image", ()))
        model_inputs = None
        if images:
            # Before the context check: a processor widens each image placeholder to its patch tokens, which
            # the context must hold too (hundreds an image, for some models).
            prompt_ids, model_inputs = self.encode_images(prompt_text, images)
        resolved = resolve(
            job_params,
            self.default_params,
            prompt_length=len(prompt_ids),
            context_length=self.context_length,
            stop_token_ids=self.stop_token_ids,
            vocab_size=self.vocab_size,
            tool_constraint=forced_constraint(choice, offered, parallel),
        )
        unchosen = job_params.skip_special_tokens is None and self.default_params.skip_special_tokens is None
        if offered and FORMATS[self.tool_format].needs_special_tokens(self.tokenizer) and unchosen:
            resolved = replace(resolved, skip_special_tokens=False)
        if resolved.constraint is not None:
            self.check_constraint(resolved.constraint)
        # A grammar binds the output from its first token, so a constrained answer never thinks (a prompt that
        # opens `<think>` would otherwise file the forced JSON as reasoning).
        thinks = self.thinks and resolved.constraint is None
        plan = OutputPlan(
            tool_format=self.tool_format if offered else None,
            tool_choice=choice if offered else None,
            parallel_tool_calls=parallel,
            thinks=thinks,
            thinks_from_the_start=thinks and prompt_opens_thinking(prompt_text),
        )
        return ChatRequest(
            request_id=request_id or uuid.uuid4().hex,
            prompt_ids=prompt_ids,
            prompt_text=prompt_text,
            params=resolved,
            adapter=adapter,
            images=images,
            output=plan,
            model_inputs=model_inputs,
            priority=priority,
        )

    def prepare_completion(
        self,
        prompt: str,
        *,
        request_id: str | None = None,
        adapter: str | None = None,
        priority: int = 0,
        **params: Any,
    ) -> ChatRequest:
        """A raw-prompt request (OpenAI's completions): the model continues `prompt`, no chat template. The
        prompt is tokenized as the tokenizer does by default (with its BOS, if it adds one), as vLLM does."""
        if not self.can_generate:
            raise InvalidRequest(f"this {self.name} engine serves a scoring model; use get_scores", field="model")
        if not isinstance(prompt, str) or not prompt:
            raise InvalidRequest("must be a non-empty string", field="prompt")
        job_params = parse_params(params)
        self._refuse_what_cannot_be_honoured(job_params)
        if job_params.tool_choice not in (None, "auto", "none"):
            raise InvalidRequest("a completion has no tools to call", field="tool_choice")
        adapter = self._served_adapter(adapter)
        prompt_ids = list(self.tokenizer(prompt)["input_ids"])
        resolved = resolve(
            job_params,
            self.default_params,
            prompt_length=len(prompt_ids),
            context_length=self.context_length,
            stop_token_ids=self.stop_token_ids,
            vocab_size=self.vocab_size,
        )
        if resolved.constraint is not None:
            self.check_constraint(resolved.constraint)
        return ChatRequest(
            request_id=request_id or uuid.uuid4().hex, prompt_ids=prompt_ids, prompt_text=prompt, params=resolved,
            adapter=adapter, priority=priority,
        )  # fmt: skip

    def _served_adapter(self, adapter: str | None) -> str | None:
        if adapter is None:
            return self.default_adapter
        if adapter not in self.adapters:
            served = ", ".join(sorted(self.adapters)) or "none"
            raise InvalidRequest(f"unknown adapter {adapter!r} (served: {served})", field="adapter")
        return adapter

    def _refuse_what_cannot_be_honoured(self, params: GenerationParams) -> None:
        """A parameter this backend cannot honour is refused by name, unless its value changes nothing
        (a penalty of 0, an empty logit_bias, tool_choice auto, plain text): clients send their defaults."""
        for name in sorted(self.refused_params):
            value = getattr(params, name, None)
            if _changes_nothing(name, value):
                continue
            raise InvalidRequest(f"the {self.name} engine cannot honour this parameter", field=name)

    def encode_images(self, prompt_text: str, images: tuple[Any, ...]) -> tuple[list[int], Any]:
        """The prompt's ids with its images in place, and what the backend needs of them besides (default: the
        prompt as tokenized, nothing more: the backend's own processor places them, as vLLM's and SGLang's do)."""
        return list(self.tokenizer(prompt_text, add_special_tokens=False)["input_ids"]), None

    def check_constraint(self, constraint: DecodingConstraint) -> None:  # noqa: B027 (a default: nothing to check)
        """Refuses, by name, a constraint this backend cannot enforce (a schema it cannot compile, say)."""

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
        builder = ResponseBuilder.for_request(request)
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
        builder = ResponseBuilder.for_request(request)
        deltas = self.generate(request)
        try:
            async for delta in deltas:
                for piece in builder.add(delta):
                    if isinstance(piece, ContentPiece):  # the answer's text: thoughts and calls are not text
                        yield piece.text
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


def _changes_nothing(name: str, value: Any) -> bool:
    if value is None or value is False:
        return True
    if name == "logprobs":  # 0 asks for the chosen tokens' log probabilities
        return False
    if name == "tool_choice":
        return value in ("auto", "none")
    if name == "response_format":
        return getattr(value, "type", None) == "text"
    return not value  # a penalty, min_p or min_tokens of 0, an empty logit_bias


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
