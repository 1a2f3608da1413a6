"""The request body of `POST /v1/responses` (Open Responses' CreateResponseBody), what it becomes as a chat job,
and what the response echoes of it (kept in the job's meta, so that any replica echoes it alike).

A request that leaves the sampling parameters out gets the Responses API's defaults (temperature 1, top_p
1): the job runs with them and the response says so, rather than echoing a number that did not run.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from engines.errors import InvalidRequest
from gateway.openai_params import (
    MAX_TOKENS_BOUND,
    TOOLS_LIST,
    TOP_LOGPROBS,
    ResponsesNamedToolChoice,
    ResponsesTool,
    SamplingParameters,
    ToolChoiceMode,
    logprobs_option,
    responses_tools,
    tool_choice_option,
)
from gateway.refusals import NOTHING, OpenAIRequest, unsupported
from gateway.response_objects import DEFAULT_ECHO
from tasks.schemas import MAX_MESSAGES, MAX_PROMPT_CHARS

LOGPROBS_INCLUDE = "message.output_text.logprobs"
MAX_METADATA = 16


class TextFormatText(OpenAIRequest):
    type: Literal["text"]


class TextFormatJsonObject(OpenAIRequest):
    type: Literal["json_object"]


class TextFormatJsonSchema(OpenAIRequest):
    type: Literal["json_schema"]
    name: str | None = Field(None, max_length=64)
    description: str | None = None
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None


class TextParam(OpenAIRequest):
    format: (
        Annotated[TextFormatText | TextFormatJsonObject | TextFormatJsonSchema, Field(discriminator="type")] | None
    ) = None
    verbosity: unsupported("medium") = None  # a hint to OpenAI's own models; inferq's cannot take it


class ReasoningParam(OpenAIRequest):
    """Only its nulls are taken: a model that reasons does so on its own, with no effort or summary to set."""

    effort: unsupported() = None
    summary: unsupported() = None
    generate_summary: unsupported() = None  # the older name of summary


class StreamOptions(OpenAIRequest):
    include_obfuscation: bool | None = None  # inferq never obfuscates: either value changes nothing


class CreateResponseRequest(SamplingParameters):
    model: str = Field(min_length=1, max_length=128)
    input: (
        Annotated[str, Field(max_length=MAX_PROMPT_CHARS)]
        | Annotated[list[dict[str, Any]], Field(max_length=MAX_MESSAGES)]
    )
    instructions: str | None = Field(None, max_length=MAX_PROMPT_CHARS)
    tools: list[ResponsesTool] | None = TOOLS_LIST
    tool_choice: ToolChoiceMode | ResponsesNamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    text: TextParam | None = None
    max_output_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_BOUND)
    top_logprobs: int | None = TOP_LOGPROBS
    include: list[Literal["message.output_text.logprobs", "reasoning.encrypted_content"]] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    background: bool = False
    # False: the response cannot be retrieved, cancelled or streamed again (404), as OpenAI's and vLLM's. Its job
    # record still lives for the record TTL, as every job's must for the queue to deliver it.
    store: bool | None = None
    metadata: dict[str, Annotated[str, Field(max_length=512)]] | None = Field(None, max_length=MAX_METADATA)
    safety_identifier: str | None = Field(None, max_length=64)
    prompt_cache_key: str | None = Field(None, max_length=64)  # a cache hint: inferq has no prompt cache to aim
    service_tier: unsupported("auto", "default") = None
    truncation: unsupported("disabled") = None

    max_tool_calls: NOTHING = None
    previous_response_id: NOTHING = None
    conversation: NOTHING = None
    prompt: NOTHING = None
    reasoning: ReasoningParam | None = None

    def job_options(self) -> dict[str, Any]:
        if self.background and self.store is False:
            raise InvalidRequest("a background response must be stored, to be retrieved", field="store")
        if "reasoning.encrypted_content" in (self.include or ()):
            raise InvalidRequest("inferq keeps no encrypted reasoning", field="include")
        if self.tool_choice not in (None, "none", "auto") and not self.tools:
            raise InvalidRequest("needs tools to choose from", field="tool_choice")
        wants_logprobs = LOGPROBS_INCLUDE in (self.include or ())
        options = {
            **self.sampling_options(),
            "temperature": DEFAULT_ECHO["temperature"] if self.temperature is None else self.temperature,
            "top_p": DEFAULT_ECHO["top_p"] if self.top_p is None else self.top_p,
            "max_new_tokens": self.max_output_tokens,
            "system": self.instructions,
            "logprobs": logprobs_option(wants_logprobs, self.top_logprobs, f"include: [{LOGPROBS_INCLUDE}]"),
            "tools": responses_tools(self.tools),
            "tool_choice": tool_choice_option(self.tool_choice),
            "parallel_tool_calls": self.parallel_tool_calls,
            "response_format": _response_format(self.text),
        }
        return {name: value for name, value in options.items() if value is not None}

    def echo(self) -> dict[str, Any]:
        """What the response says of its request (kept with the job)."""
        options = self.job_options()
        tools = [
            {"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters,
             "strict": t.strict}
            for t in self.tools or ()
        ]  # fmt: skip
        return {
            "instructions": self.instructions,
            "tools": tools,
            "tool_choice": self.tool_choice.model_dump()
            if isinstance(self.tool_choice, OpenAIRequest)
            else (self.tool_choice or "auto"),
            "parallel_tool_calls": self.parallel_tool_calls is not False,
            "text": {"format": _echoed_format(self.text)},
            "temperature": options["temperature"],
            "top_p": options["top_p"],
            "presence_penalty": self.presence_penalty or 0.0,
            "frequency_penalty": self.frequency_penalty or 0.0,
            "top_logprobs": self.top_logprobs or 0,
            "max_output_tokens": self.max_output_tokens,
            "background": self.background,
            "store": self.store is not False,
            "metadata": self.metadata or {},
            "safety_identifier": self.safety_identifier,
            "prompt_cache_key": self.prompt_cache_key,
            "user": self.user,
            "include_logprobs": "logprobs" in options,
        }


def _response_format(text: TextParam | None) -> dict[str, Any] | None:
    chosen = None if text is None else text.format
    if isinstance(chosen, TextFormatJsonObject):
        return {"type": "json_object"}
    if isinstance(chosen, TextFormatJsonSchema):
        return {"type": "json_schema", "schema": chosen.schema_, "name": chosen.name, "strict": chosen.strict}
    return None


def _echoed_format(text: TextParam | None) -> dict[str, Any]:
    chosen = None if text is None else text.format
    if isinstance(chosen, TextFormatJsonSchema):
        # The Open Responses schema wants the schema itself left out of the echo (null), and a description.
        return {"type": "json_schema", "name": chosen.name or "response", "description": chosen.description,
                "schema": None, "strict": bool(chosen.strict)}  # fmt: skip
    return {"type": chosen.type} if chosen is not None else {"type": "text"}
