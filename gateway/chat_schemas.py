"""The request bodies of `/v1/chat/completions` and `/v1/score`, and what each becomes as a job.

Bounds are OpenAI's where OpenAI has them (temperature 0-2, top_p, at most 4 stop strings, seeds in a
signed 64-bit integer) and inferq's own for its extensions; types are strict and numbers finite
(gateway/refusals.py). Each error names the field as the client sent it.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from engines.errors import InvalidRequest
from engines.schemas import MAX_N, MAX_STOP_CHARS
from gateway.openai_params import (
    MAX_TOKENS_BOUND,
    TOOLS_LIST,
    TOP_LOGPROBS,
    ChatNamedToolChoice,
    ChatResponseFormat,
    ChatTool,
    InferqExtensions,
    SamplingParameters,
    ToolChoiceMode,
    chat_tools,
    logprobs_option,
    response_format_option,
    tool_choice_option,
)
from gateway.refusals import NOTHING, OpenAIRequest, unsupported
from tasks.schemas import MAX_MESSAGES

OPENAI_MAX_STOP = 4

StopStrings = (
    Annotated[str, Field(min_length=1, max_length=MAX_STOP_CHARS)]
    | Annotated[list[Annotated[str, Field(min_length=1, max_length=MAX_STOP_CHARS)]], Field(max_length=OPENAI_MAX_STOP)]
)


class StreamOptions(OpenAIRequest):
    include_usage: bool = False
    include_obfuscation: bool | None = None  # inferq never obfuscates: either value changes nothing


class ChatCompletionRequest(SamplingParameters):
    model: str = Field(min_length=1, max_length=128)
    messages: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_MESSAGES)
    n: int | None = Field(None, ge=1, le=MAX_N)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_BOUND)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_BOUND)
    stop: StopStrings | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = TOP_LOGPROBS
    tools: list[ChatTool] | None = TOOLS_LIST
    tool_choice: ToolChoiceMode | ChatNamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ChatResponseFormat | None = None

    functions: NOTHING = None
    function_call: NOTHING = None
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
        if self.tool_choice not in (None, "none", "auto") and not self.tools:
            raise InvalidRequest("needs tools to choose from", field="tool_choice")
        options = {
            **self.sampling_options(),
            "n": self.n,
            "max_new_tokens": self.max_completion_tokens or self.max_tokens,
            "stop": self.stop,
            "logprobs": logprobs_option(self.logprobs, self.top_logprobs),
            "tools": chat_tools(self.tools),
            "tool_choice": tool_choice_option(self.tool_choice),
            "parallel_tool_calls": self.parallel_tool_calls,
            "response_format": response_format_option(self.response_format),
        }
        return {name: value for name, value in options.items() if value is not None}

    def field_names(self) -> dict[str, str]:
        """inferq's names of this request's fields -> the client's."""
        cap = "max_completion_tokens" if self.max_completion_tokens is not None else "max_tokens"
        return {"max_new_tokens": cap, "num_return_sequences": "n", "logprobs": "top_logprobs"}

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
