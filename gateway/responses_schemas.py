"""The request body of `POST /v1/responses` (text in, text out; tools can come later)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from engines.schemas import MAX_TEMPERATURE, SEED_RANGE
from gateway.chat_schemas import MAX_TOKENS_BOUND, MAX_USER_CHARS, InferqExtensions
from gateway.refusals import NO_LOGPROBS, NO_TOOLS, NOTHING, PLAIN_TEXT, unsupported
from tasks.schemas import MAX_MESSAGES, MAX_PROMPT_CHARS


class CreateResponseRequest(InferqExtensions):
    model: str = Field(min_length=1, max_length=128)
    input: (
        Annotated[str, Field(max_length=MAX_PROMPT_CHARS)]
        | Annotated[list[dict[str, Any]], Field(max_length=MAX_MESSAGES)]
    )
    instructions: str | None = None
    temperature: float | None = Field(None, ge=0, le=MAX_TEMPERATURE)
    top_p: float | None = Field(None, gt=0, le=1)
    max_output_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_BOUND)
    stream: bool = False
    background: bool = False
    # Every response is kept (in Redis, for the record TTL): a request not to store it cannot be honoured.
    store: unsupported(True) = None
    user: str | None = Field(None, max_length=MAX_USER_CHARS)
    # inferq extensions
    seed: int | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1])

    tools: NO_TOOLS = None
    tool_choice: NO_TOOLS = None
    parallel_tool_calls: unsupported(False) = None
    max_tool_calls: NOTHING = None
    previous_response_id: NOTHING = None
    conversation: NOTHING = None
    prompt: NOTHING = None
    reasoning: NOTHING = None
    text: PLAIN_TEXT = None
    truncation: unsupported("disabled") = None
    include: NOTHING = None
    metadata: NOTHING = None
    top_logprobs: NO_LOGPROBS = None
    service_tier: unsupported("auto", "default") = None
    stream_options: NOTHING = None

    def job_options(self) -> dict[str, Any]:
        options = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_new_tokens": self.max_output_tokens,
            "seed": self.seed,
            "deadline_s": self.deadline_s,
            "max_runtime_s": self.max_runtime_s,
            "system": self.instructions,
        }
        return {name: value for name, value in options.items() if value is not None}
