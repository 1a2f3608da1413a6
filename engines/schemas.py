"""Torch-free pydantic models of the engine contract: messages, parameters, responses, deltas."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from engines.errors import InvalidRequest

FinishReason = Literal["stop", "length", "abort"]
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


class Message(_Model):
    role: Role
    content: str | list[ContentPart]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content if isinstance(part, TextPart))

    def media(self) -> list[ImagePart | VideoPart | AudioPart]:
        if isinstance(self.content, str):
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

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop_string(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else list(value) if isinstance(value, tuple) else value


class Response(_Model):
    response_text: str
    response_length: int = Field(ge=0, description="generated tokens, the end-of-turn token included")
    prompt_length: int = Field(ge=0, description="prompt tokens after the chat template")
    finish_reason: FinishReason


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


def parse_engine_args(model: type[EngineArgs], engine_args: dict[str, Any]) -> EngineArgs:
    try:
        return model.model_validate(engine_args)
    except ValidationError as exc:
        raise invalid_from_validation(exc, "engine_args") from None
