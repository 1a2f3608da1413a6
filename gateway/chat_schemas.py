"""The request bodies of `/v1/chat/completions` and `/v1/score`, and what each becomes as a job.

Bounds are OpenAI's where OpenAI has them (temperature 0-2, top_p, at most 4 stop strings, seeds in a
signed 64-bit integer) and inferq's own for its extensions; types are strict and numbers finite
(gateway/refusals.py). Each error names the field as the client sent it.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from engines.errors import InvalidRequest
from engines.schemas import MAX_N, MAX_REPETITION_PENALTY, MAX_STOP_CHARS, MAX_TEMPERATURE, SEED_RANGE
from gateway.refusals import NO_LOGPROBS, NO_PENALTY, NO_TOOLS, NOTHING, PLAIN_TEXT, OpenAIRequest, unsupported
from tasks.schemas import MAX_DEADLINE_S, MAX_MESSAGES, MAX_RUNTIME_S

OPENAI_MAX_STOP = 4
MAX_USER_CHARS = 256
# A number of tokens no model's context holds: a larger max_tokens is a mistake whatever the model.
MAX_TOKENS_BOUND = 10_000_000

StopStrings = (
    str
    | Annotated[list[Annotated[str, Field(min_length=1, max_length=MAX_STOP_CHARS)]], Field(max_length=OPENAI_MAX_STOP)]
)


class StreamOptions(OpenAIRequest):
    include_usage: bool = False


class InferqExtensions(OpenAIRequest):
    """inferq's own fields, beside OpenAI's (the openai package sends them with `extra_body=`)."""

    priority: int | None = Field(None, ge=0, le=9, description="0 (highest) to 9; default 5")
    deadline_s: float | None = Field(
        None, gt=0, le=MAX_DEADLINE_S, description="the job expires (504) unless done this many seconds from now"
    )
    max_runtime_s: float | None = Field(
        None, gt=0, le=MAX_RUNTIME_S, description="the job is stopped (504) after running this long"
    )


class ChatCompletionRequest(InferqExtensions):
    model: str = Field(min_length=1, max_length=128)
    messages: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_MESSAGES)
    n: int | None = Field(None, ge=1, le=MAX_N)
    temperature: float | None = Field(None, ge=0, le=MAX_TEMPERATURE)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_BOUND)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_BOUND)
    stop: StopStrings | None = None
    seed: int | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, max_length=MAX_USER_CHARS, description="the caller's end user; logged")
    top_k: int | None = Field(None, ge=0, description="inferq: 0 disables top-k")
    repetition_penalty: float | None = Field(None, gt=0, le=MAX_REPETITION_PENALTY, description="inferq")

    logprobs: NO_LOGPROBS = None
    top_logprobs: NO_LOGPROBS = None
    presence_penalty: NO_PENALTY = None
    frequency_penalty: NO_PENALTY = None
    logit_bias: NOTHING = None
    response_format: PLAIN_TEXT = None
    tools: NO_TOOLS = None
    tool_choice: NO_TOOLS = None
    parallel_tool_calls: unsupported(False) = None
    functions: NO_TOOLS = None
    function_call: NO_TOOLS = None
    modalities: unsupported(["text"]) = None
    audio: NOTHING = None
    prediction: NOTHING = None
    reasoning_effort: NOTHING = None
    web_search_options: NOTHING = None
    metadata: NOTHING = None
    store: unsupported(False) = None
    service_tier: unsupported("auto", "default") = None

    def job_options(self) -> dict[str, Any]:
        """Keyword arguments for `submit_chat` (GenerationParams names), only those given."""
        if self.stream_options is not None and not self.stream:
            raise InvalidRequest("only allowed when stream is true", field="stream_options")
        if None not in (self.max_tokens, self.max_completion_tokens) and self.max_tokens != self.max_completion_tokens:
            raise InvalidRequest("differs from max_tokens; give one of them", field="max_completion_tokens")
        options = {
            "n": self.n,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "repetition_penalty": self.repetition_penalty,
            "max_new_tokens": self.max_completion_tokens or self.max_tokens,
            "stop": self.stop,
            "seed": self.seed,
            "deadline_s": self.deadline_s,
            "max_runtime_s": self.max_runtime_s,
        }
        return {name: value for name, value in options.items() if value is not None}

    def field_names(self) -> dict[str, str]:
        """inferq's names of this request's fields -> the client's."""
        cap = "max_completion_tokens" if self.max_completion_tokens is not None else "max_tokens"
        return {"max_new_tokens": cap, "num_return_sequences": "n"}

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


class ScoreRequest(InferqExtensions):
    """LLaMA-Factory's `/v1/score/evaluation` body: `messages` are texts to score as they are; or
    `conversations` (lists of chat messages, the answer last), which the worker renders with the model's
    own chat template before scoring — raw text is not what a reward model trained on chats scores."""

    model: str = Field(min_length=1, max_length=128)
    messages: list[Annotated[str, Field(min_length=1)]] | None = Field(None, min_length=1, max_length=MAX_MESSAGES)
    conversations: list[list[dict[str, Any]]] | None = Field(None, min_length=1, max_length=MAX_MESSAGES)
    max_length: int | None = Field(None, ge=1, le=MAX_TOKENS_BOUND)
