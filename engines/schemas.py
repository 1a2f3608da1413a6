"""Torch-free pydantic models of the engine contract: messages, parameters, responses, deltas."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from engines.constraints import ResponseFormat
from engines.errors import InvalidRequest
from engines.logprobs import MAX_TOP_LOGPROBS, TokenLogprob
from engines.tool_schemas import ToolCall, ToolChoice

# "tool_calls": the answer is one or more calls of the request's tools (engines/tools/).
FinishReason = Literal["stop", "length", "abort", "tool_calls"]
Role = Literal["system", "user", "assistant", "tool"]
MediaKind = Literal["image", "video", "audio"]
# More answers per request than this is a mistake (or an attack on a shared GPU), not a use case.
MAX_N = 32
# Bounds every producer is held to (the gateway applies OpenAI's, which are tighter where OpenAI has them).
MAX_TEMPERATURE = 2.0
MAX_STOP_STRINGS = 16  # each is matched against the text at every token
MAX_STOP_CHARS = 512
SEED_RANGE = (-(2**63), 2**63 - 1)  # a signed 64-bit integer, as OpenAI and vLLM take it
MAX_REPETITION_PENALTY = 10.0
MAX_LOGIT_BIAS_ENTRIES = 1024


# Token ids come as JSON object keys, which are strings: the one place a string becomes an int.
TokenId = Annotated[int, Strict(False), Field(ge=0)]
Bias = Annotated[float, Field(ge=-100, le=100)]


class _Model(BaseModel):
    # Unknown keys are refused: a misspelt "temprature" must fail, not silently fall back. Types are strict
    # (no "0.5" for a float, no True for an int) and numbers finite: each becomes a tensor op on a shared batch.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class TextPart(_Model):
    type: Literal["text"] = "text"
    text: str


class ImagePart(_Model):
    type: Literal["image"] = "image"
    image: str = Field(description="URL, data: URL, or a path readable by the worker")


class VideoPart(_Model):
    type: Literal["video"] = "video"
    video: str


class AudioPart(_Model):
    type: Literal["audio"] = "audio"
    audio: str


ContentPart = Annotated[TextPart | ImagePart | VideoPart | AudioPart, Field(discriminator="type")]


PARTICIPANT_NAME = r"^[A-Za-z0-9_-]{1,64}$"  # OpenAI's pattern for a message's `name`


class Message(_Model):
    role: Role
    # OpenAI's participant name (LangGraph's agents set it): given to chat templates that write it, as vLLM does
    name: str | None = Field(None, pattern=PARTICIPANT_NAME, description="who spoke this turn")
    tool_calls: list[ToolCall] | None = Field(None, description="an assistant turn's calls, fed back")
    tool_call_id: str | None = Field(None, description="a tool turn: the call it answers")
    content: str | list[ContentPart] | None = Field(None, validate_default=True)  # null only beside tool calls

    @field_validator("tool_calls")
    @classmethod
    def _calls_are_the_assistants(cls, calls: list[ToolCall] | None, info: ValidationInfo) -> list[ToolCall] | None:
        if calls is not None and info.data.get("role") != "assistant":
            raise ValueError("only an assistant turn makes tool calls")
        return calls

    @field_validator("tool_call_id")
    @classmethod
    def _answers_are_the_tools(cls, call_id: str | None, info: ValidationInfo) -> str | None:
        if call_id is not None and info.data.get("role") != "tool":
            raise ValueError("only a tool turn answers a tool call")
        return call_id

    @field_validator("content")
    @classmethod
    def _content_unless_calling(cls, content: Any, info: ValidationInfo) -> Any:
        if content is None and not info.data.get("tool_calls"):
            raise ValueError("required (only an assistant turn that calls tools may leave it out)")
        return content

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content if isinstance(part, TextPart))

    def media(self) -> list[ImagePart | VideoPart | AudioPart]:
        if self.content is None or isinstance(self.content, str):
            return []
        return [part for part in self.content if not isinstance(part, TextPart)]


class GenerationParams(_Model):
    """Per-request sampling parameters. `None` means "use the engine's default" (see engines/params.py)."""

    do_sample: bool | None = None
    temperature: float | None = Field(None, ge=0, le=MAX_TEMPERATURE, description="0 means greedy")
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0, description="0 disables top-k")
    max_new_tokens: int | None = Field(None, ge=1)
    max_length: int | None = Field(None, ge=1, description="prompt + new tokens; max_new_tokens wins")
    repetition_penalty: float | None = Field(None, gt=0, le=MAX_REPETITION_PENALTY)
    length_penalty: float | None = None
    stop: list[Annotated[str, Field(min_length=1, max_length=MAX_STOP_CHARS)]] | None = Field(
        None, max_length=MAX_STOP_STRINGS
    )
    num_return_sequences: int | None = Field(
        None, ge=1, le=MAX_N, validation_alias=AliasChoices("num_return_sequences", "n")
    )
    seed: int | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    skip_special_tokens: bool | None = None
    # OpenAI's and vLLM's sampling extras (an engine that cannot honour one refuses it by name)
    logprobs: int | None = Field(
        None, ge=0, le=MAX_TOP_LOGPROBS, description="log probabilities of each token and this many alternatives"
    )
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    min_p: float | None = Field(None, ge=0, le=1)
    # token ids come as JSON object keys, which are strings: the one field that parses them
    logit_bias: dict[Annotated[int, Strict(False), Field(ge=0)], Annotated[float, Field(ge=-100, le=100)]] | None = (
        Field(None, max_length=MAX_LOGIT_BIAS_ENTRIES, description="token id -> added to its logit")
    )
    ignore_eos: bool | None = Field(None, description="go on past the end-of-turn token, to max_new_tokens")
    min_tokens: int | None = Field(None, ge=0, description="no end-of-turn token or stop string before this many")
    # What the answer must be: JSON (response_format), or a call of the request's tools (tool_choice)
    response_format: ResponseFormat | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop_string(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else list(value) if isinstance(value, tuple) else value


class Response(_Model):
    response_text: str = Field(description="the answer's text: no reasoning, no tool calls")
    response_length: int = Field(ge=0, description="generated tokens, the end-of-turn token included")
    prompt_length: int = Field(ge=0, description="prompt tokens after the chat template")
    finish_reason: FinishReason
    tool_calls: list[ToolCall] | None = Field(None, description="the calls the model made of the request's tools")
    reasoning_text: str | None = Field(None, description="what a reasoning model thought before answering")
    logprobs: list[TokenLogprob] | None = Field(None, description="when asked for: one per generated token")


def invalid_from_validation(exc: ValidationError, prefix: str = "") -> InvalidRequest:
    """The first pydantic error as an `InvalidRequest` whose `field` is its dotted location."""
    first = exc.errors()[0]
    location = ".".join(str(part) for part in (prefix, *first["loc"]) if part != "")
    return InvalidRequest(first["msg"].removeprefix("Value error, "), field=location or None)


_MESSAGES = TypeAdapter(list[Message])


def parse_messages(messages: Sequence[Message | dict[str, Any]]) -> list[Message]:
    if isinstance(messages, (str, bytes, dict)):
        raise InvalidRequest("must be a list of {role, content} objects", field="messages")
    try:
        parsed = _MESSAGES.validate_python(list(messages))
    except ValidationError as exc:
        raise invalid_from_validation(exc, "messages") from None
    except TypeError:
        raise InvalidRequest("must be a list of {role, content} objects", field="messages") from None
    if not parsed:
        raise InvalidRequest("must hold at least one message", field="messages")
    return parsed


def parse_params(params: dict[str, Any]) -> GenerationParams:
    try:
        return GenerationParams.model_validate(params)
    except ValidationError as exc:
        raise invalid_from_validation(exc) from None


@dataclass(frozen=True, slots=True)
class Delta:
    """What one backend step added to one of a request's `n` sequences."""

    index: int
    text: str
    token_ids: tuple[int, ...]
    finish_reason: FinishReason | None = None
    logprobs: tuple[TokenLogprob, ...] = ()  # one per token of token_ids, when the request asked for them


class EngineArgs(_Model):
    """Arguments every engine takes; each backend extends this model with its own."""

    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="auto: float32 on CPU, the checkpoint's dtype on GPU"
    )
    max_model_len: int | None = Field(None, ge=1, description="context length; defaults to the model's")
    default_params: GenerationParams = Field(default_factory=GenerationParams)
    chat_template: str | None = Field(None, description="a Jinja template replacing the tokenizer's")
    trust_remote_code: bool = False
    adapters: dict[str, str] = Field(default_factory=dict, description="LoRA adapter name -> path")
    default_adapter: str | None = Field(
        None, description="the adapter a request that names none gets (LLaMA-Factory's adapter_name_or_path)"
    )
    tool_format: Literal["auto", "hermes", "llama3_json", "mistral", "react"] = Field(
        "auto", description="how the model writes tool calls; auto: read off its chat template"
    )
    reasoning: Literal["auto", "think", "none"] = Field(
        "auto", description="think: <think>…</think> opens an answer; auto: when the chat template mentions it"
    )
    # The worker fills these in from its settings (INFERQ_MEDIA_*): where images may come from.
    media_remote_urls: bool = False
    media_local_paths: bool = False

    @model_validator(mode="after")
    def _default_adapter_is_served(self) -> EngineArgs:
        if self.default_adapter is not None and self.default_adapter not in self.adapters:
            raise ValueError(f"default_adapter {self.default_adapter!r} is not one of adapters")
        return self


def parse_engine_args(model: type[EngineArgs], engine_args: dict[str, Any]) -> EngineArgs:
    try:
        return model.model_validate(engine_args)
    except ValidationError as exc:
        raise invalid_from_validation(exc, "engine_args") from None
