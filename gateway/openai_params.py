"""OpenAI's request parameters that every text endpoint shares, typed strictly, and what they become in a job.

Sampling (OpenAI's bounds), tools and `tool_choice` (Chat Completions nests a function under `function`,
Responses does not), `response_format`, logprobs, and the extensions vLLM's clients send (`ignore_eos`,
`min_tokens`, `min_p`, `top_k`, `repetition_penalty`) with inferq's (`priority`, `deadline_s`,
`max_runtime_s`). Each turns into the engine contract's names (engines/schemas.py: GenerationParams).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from engines.errors import InvalidRequest
from engines.logprobs import MAX_TOP_LOGPROBS
from engines.schemas import MAX_LOGIT_BIAS_ENTRIES, MAX_REPETITION_PENALTY, MAX_TEMPERATURE, SEED_RANGE
from engines.tool_schemas import FUNCTION_NAME_PATTERN, MAX_TOOLS
from gateway.refusals import OpenAIRequest
from tasks.schemas import MAX_DEADLINE_S, MAX_RUNTIME_S

# A number of tokens no model's context holds: a larger max_tokens is a mistake whatever the model.
MAX_TOKENS_BOUND = 10_000_000
MAX_USER_CHARS = 256


class FunctionSpec(OpenAIRequest):
    name: str = Field(pattern=FUNCTION_NAME_PATTERN)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ChatTool(OpenAIRequest):
    type: Literal["function"]
    function: FunctionSpec


class ResponsesTool(OpenAIRequest):
    """Responses' function tool: Chat Completions' function, not nested (its type first: the error names it)."""

    type: Literal["function"]
    name: str = Field(pattern=FUNCTION_NAME_PATTERN)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionName(OpenAIRequest):
    name: str = Field(pattern=FUNCTION_NAME_PATTERN)


class ChatNamedToolChoice(OpenAIRequest):
    type: Literal["function"]
    function: FunctionName


class ResponsesNamedToolChoice(FunctionName):
    type: Literal["function"]


ToolChoiceMode = Literal["none", "auto", "required"]


class JsonSchemaSpec(OpenAIRequest):
    name: str = Field(max_length=64)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class TextResponseFormat(OpenAIRequest):
    type: Literal["text"]


class JsonObjectResponseFormat(OpenAIRequest):
    type: Literal["json_object"]


class JsonSchemaResponseFormat(OpenAIRequest):
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


ChatResponseFormat = Annotated[
    TextResponseFormat | JsonObjectResponseFormat | JsonSchemaResponseFormat, Field(discriminator="type")
]


class InferqExtensions(OpenAIRequest):
    """inferq's own fields, beside OpenAI's (the openai package sends them with `extra_body=`)."""

    priority: int | None = Field(None, ge=0, le=9, description="0 (highest) to 9; default 5")
    deadline_s: float | None = Field(
        None, gt=0, le=MAX_DEADLINE_S, description="the job expires (504) unless done this many seconds from now"
    )
    max_runtime_s: float | None = Field(
        None, gt=0, le=MAX_RUNTIME_S, description="the job is stopped (504) after running this long"
    )


class SamplingParameters(InferqExtensions):
    """The sampling parameters of chat completions, completions and responses, with OpenAI's bounds."""

    temperature: float | None = Field(None, ge=0, le=MAX_TEMPERATURE)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = Field(
        None, max_length=MAX_LOGIT_BIAS_ENTRIES
    )
    user: str | None = Field(None, max_length=MAX_USER_CHARS, description="the caller's end user; logged")
    # vLLM's extensions, which its load generators send (vllm bench serve: ignore_eos)
    ignore_eos: bool | None = None
    min_tokens: int | None = Field(None, ge=0, le=MAX_TOKENS_BOUND)
    min_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=-1, description="0 or -1 (vLLM's) disables top-k")
    repetition_penalty: float | None = Field(None, gt=0, le=MAX_REPETITION_PENALTY)

    @field_validator("logit_bias")
    @classmethod
    def _token_ids(cls, bias: dict[str, float] | None) -> dict[str, float] | None:
        for token in bias or {}:
            if not (token.isascii() and token.isdigit()):  # "²" is a digit to str.isdigit, not to int()
                raise ValueError(f"keys are token ids, not {token!r}")
        return bias

    def sampling_options(self) -> dict[str, Any]:
        """Keyword arguments for a submit (GenerationParams names), only those given."""
        options = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
            "logit_bias": None if self.logit_bias is None else {int(k): v for k, v in self.logit_bias.items()},
            "ignore_eos": self.ignore_eos,
            "min_tokens": self.min_tokens,
            "min_p": self.min_p,
            "top_k": 0 if self.top_k == -1 else self.top_k,
            "repetition_penalty": self.repetition_penalty,
            "deadline_s": self.deadline_s,
            "max_runtime_s": self.max_runtime_s,
        }
        return {name: value for name, value in options.items() if value is not None}


def chat_tools(tools: list[ChatTool] | None) -> list[dict[str, Any]] | None:
    return None if tools is None else [tool.function.model_dump(exclude_none=True) for tool in tools]


def responses_tools(tools: list[ResponsesTool] | None) -> list[dict[str, Any]] | None:
    return None if tools is None else [tool.model_dump(exclude={"type"}, exclude_none=True) for tool in tools]


def tool_choice_option(choice: Any) -> Any:
    """OpenAI's tool_choice (either API's shape) as the engine contract's: a mode, or {"name": ...}."""
    if isinstance(choice, ChatNamedToolChoice):
        return {"name": choice.function.name}
    if isinstance(choice, ResponsesNamedToolChoice):
        return {"name": choice.name}
    return choice


def response_format_option(response_format: Any) -> dict[str, Any] | None:
    """OpenAI's json_object / json_schema as the engine contract's response_format; text is no constraint."""
    if response_format is None or isinstance(response_format, TextResponseFormat):
        return None
    if isinstance(response_format, JsonObjectResponseFormat):
        return {"type": "json_object"}
    spec = response_format.json_schema
    if spec.schema_ is None:
        return {"type": "json_object"}
    return {"type": "json_schema", "schema": spec.schema_, "name": spec.name, "strict": spec.strict}


def logprobs_option(logprobs: bool | None, top_logprobs: int | None, logprobs_field: str = "logprobs") -> int | None:
    """OpenAI's `logprobs: true` (+ `top_logprobs`) as the number of alternatives per token; None: none."""
    if top_logprobs is not None and not logprobs:
        raise InvalidRequest(f"top_logprobs needs {logprobs_field}: true", field="top_logprobs")
    return (top_logprobs or 0) if logprobs else None


TOOLS_LIST = Field(None, max_length=MAX_TOOLS)
TOP_LOGPROBS = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
