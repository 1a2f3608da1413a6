"""The request bodies of `/v1/chat/completions` and `/v1/score`, and what each becomes as a job."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from engines.errors import InvalidRequest
from gateway.refusals import NO_LOGPROBS, NO_PENALTY, NO_TOOLS, NOTHING, PLAIN_TEXT, OpenAIRequest, unsupported


class StreamOptions(OpenAIRequest):
    include_usage: bool = False


class ChatCompletionRequest(OpenAIRequest):
    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    n: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, description="the caller's end user; written to the gateway's log")
    # inferq extensions (the openai package sends them with `extra_body=`)
    priority: int | None = Field(None, description="0 (highest) to 9; default 5")
    deadline_s: float | None = Field(None, description="the job expires (504) unless done this many seconds from now")
    max_runtime_s: float | None = Field(None, description="the job is stopped (504) after running this long")
    top_k: int | None = None
    repetition_penalty: float | None = None

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

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


class ScoreRequest(OpenAIRequest):
    """LLaMA-Factory's `/v1/score/evaluation` body: `messages` are texts to score as they are; or
    `conversations` (lists of chat messages, the answer last), which the worker renders with the model's
    own chat template before scoring — raw text is not what a reward model trained on chats scores."""

    model: str
    messages: list[str] | None = Field(None, min_length=1)
    conversations: list[list[dict[str, Any]]] | None = Field(None, min_length=1)
    max_length: int | None = None
    priority: int | None = None
    deadline_s: float | None = None
