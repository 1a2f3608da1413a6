"""The request body of `POST /v1/responses` (text in, text out; tools can come later)."""

from __future__ import annotations

from typing import Any

from gateway.refusals import NO_LOGPROBS, NO_TOOLS, NOTHING, PLAIN_TEXT, OpenAIRequest, unsupported


class CreateResponseRequest(OpenAIRequest):
    model: str
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    stream: bool = False
    background: bool = False
    # Every response is kept (in Redis, for the record TTL): a request not to store it cannot be honoured.
    store: unsupported(True) = None
    user: str | None = None
    # inferq extensions
    priority: int | None = None
    deadline_s: float | None = None
    seed: int | None = None

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
            "system": self.instructions,
        }
        return {name: value for name, value in options.items() if value is not None}
