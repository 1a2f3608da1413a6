"""Checks of our own writing for the Open Responses specification (openresponses/openresponses, the
2026-01-15 and 2026-04-24 schemas): every required field of a response, of its output items and content
parts, and of every stream event type, with its type, nullability and enum. `problems(...)` returns what
is wrong, as "path: what" lines; an empty list passes. Extra properties are allowed, as the spec's own
validator allows them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Check = Callable[[Any, str], list[str]]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def integer(value: Any, path: str) -> list[str]:
    return [] if _is_int(value) else [f"{path}: an integer, not {value!r}"]


def number(value: Any, path: str) -> list[str]:
    return [] if _is_number(value) else [f"{path}: a number, not {value!r}"]


def string(value: Any, path: str) -> list[str]:
    return [] if isinstance(value, str) else [f"{path}: a string, not {value!r}"]


def boolean(value: Any, path: str) -> list[str]:
    return [] if isinstance(value, bool) else [f"{path}: a boolean, not {value!r}"]


def anything(value: Any, path: str) -> list[str]:
    return []


def nullable(check: Check) -> Check:
    return lambda value, path: [] if value is None else check(value, path)


def one_of(*allowed: Any) -> Check:
    return lambda value, path: [] if value in allowed else [f"{path}: one of {allowed}, not {value!r}"]


def array(check: Check) -> Check:
    def checked(value: Any, path: str) -> list[str]:
        if not isinstance(value, list):
            return [f"{path}: an array, not {value!r}"]
        return [problem for i, item in enumerate(value) for problem in check(item, f"{path}.{i}")]

    return checked


def obj(required: dict[str, Check], optional: dict[str, Check] | None = None) -> Check:
    """An object with these required keys (present: a nullable one must be an explicit null) and optional ones."""

    def checked(value: Any, path: str) -> list[str]:
        if not isinstance(value, dict):
            return [f"{path}: an object, not {value!r}"]
        found = []
        for key, check in required.items():
            if key not in value:
                found.append(f"{path}.{key}: required")
            else:
                found += check(value[key], f"{path}.{key}")
        for key, check in (optional or {}).items():
            if key in value:
                found += check(value[key], f"{path}.{key}")
        return found

    return checked


def by_type(choices: dict[str, Check]) -> Check:
    def checked(value: Any, path: str) -> list[str]:
        kind = value.get("type") if isinstance(value, dict) else None
        if kind not in choices:
            return [f"{path}.type: one of {sorted(choices)}, not {kind!r}"]
        return choices[kind](value, path)

    return checked


STATUS = one_of("in_progress", "completed", "incomplete")
TOP_LOGPROB = obj({"token": string, "logprob": number, "bytes": array(integer)})
LOGPROB = obj({"token": string, "logprob": number, "bytes": array(integer), "top_logprobs": array(TOP_LOGPROB)})
ANNOTATION = obj({"type": one_of("url_citation"), "url": string, "start_index": integer, "end_index": integer,
                  "title": string})  # fmt: skip
OUTPUT_TEXT = obj({"type": one_of("output_text"), "text": string, "annotations": array(ANNOTATION),
                   "logprobs": array(LOGPROB)})  # fmt: skip
TEXT_PART = obj({"type": string, "text": string})
CONTENT_PART = by_type(
    {
        "output_text": OUTPUT_TEXT,
        "input_text": TEXT_PART,
        "text": TEXT_PART,
        "summary_text": TEXT_PART,
        "reasoning_text": TEXT_PART,
        "refusal": obj({"type": string, "refusal": string}),
        "input_image": obj({"type": string, "image_url": nullable(string), "detail": one_of("low", "high", "auto")}),
    }
)
MESSAGE = obj(
    {"type": one_of("message"), "id": string, "status": STATUS,
     "role": one_of("user", "assistant", "system", "developer"), "content": array(CONTENT_PART)},
    {"phase": one_of("commentary", "final_answer")},
)  # fmt: skip
FUNCTION_CALL = obj({"type": one_of("function_call"), "id": string, "call_id": string, "name": string,
                     "arguments": string, "status": STATUS})  # fmt: skip
FUNCTION_CALL_OUTPUT = obj({"type": one_of("function_call_output"), "id": string, "call_id": string,
                            "output": anything, "status": STATUS})  # fmt: skip
REASONING = obj({"type": one_of("reasoning"), "id": string, "summary": array(CONTENT_PART)},
                {"content": array(CONTENT_PART), "encrypted_content": string})  # fmt: skip
ITEM = by_type(
    {"message": MESSAGE, "function_call": FUNCTION_CALL, "function_call_output": FUNCTION_CALL_OUTPUT,
     "reasoning": REASONING}
)  # fmt: skip
TOOL = obj({"type": one_of("function"), "name": string, "description": nullable(string),
            "parameters": nullable(obj({})), "strict": nullable(boolean)})  # fmt: skip
TOOL_CHOICE: Check = lambda value, path: (  # noqa: E731
    one_of("none", "auto", "required")(value, path) if isinstance(value, str)
    else obj({"type": string}, {"name": string})(value, path)
)  # fmt: skip
TEXT_FORMAT = by_type(
    {
        "text": obj({"type": string}),
        "json_object": obj({"type": string}),
        "json_schema": obj({"type": string, "name": string, "description": nullable(string),
                            "schema": one_of(None), "strict": boolean}),
    }
)  # fmt: skip
USAGE = obj(
    {"input_tokens": integer, "output_tokens": integer, "total_tokens": integer,
     "input_tokens_details": obj({"cached_tokens": integer}),
     "output_tokens_details": obj({"reasoning_tokens": integer})}
)  # fmt: skip
RESPONSE = obj(
    {
        "id": string, "object": one_of("response"), "created_at": integer, "completed_at": nullable(integer),
        "status": string, "incomplete_details": nullable(obj({"reason": string})), "model": string,
        "previous_response_id": nullable(string), "instructions": nullable(string), "output": array(ITEM),
        "error": nullable(obj({"code": string, "message": string})), "tools": array(TOOL),
        "tool_choice": TOOL_CHOICE, "truncation": one_of("auto", "disabled"), "parallel_tool_calls": boolean,
        "text": obj({"format": TEXT_FORMAT}), "top_p": number, "presence_penalty": number,
        "frequency_penalty": number, "top_logprobs": integer, "temperature": number,
        "reasoning": nullable(obj({"effort": anything, "summary": anything})), "usage": nullable(USAGE),
        "max_output_tokens": nullable(integer), "max_tool_calls": nullable(integer), "store": boolean,
        "background": boolean, "service_tier": string, "metadata": anything,
        "safety_identifier": nullable(string), "prompt_cache_key": nullable(string),
    }
)  # fmt: skip

_NUMBERED = {"type": string, "sequence_number": integer}
_IN_PART = {**_NUMBERED, "item_id": string, "output_index": integer, "content_index": integer}
EVENTS: dict[str, Check] = {
    **{
        name: obj({**_NUMBERED, "response": RESPONSE})
        for name in (
            "response.created",
            "response.queued",
            "response.in_progress",
            "response.completed",
            "response.failed",
            "response.incomplete",
        )
    },  # fmt: skip
    "response.output_item.added": obj({**_NUMBERED, "output_index": integer, "item": nullable(ITEM)}),
    "response.output_item.done": obj({**_NUMBERED, "output_index": integer, "item": nullable(ITEM)}),
    "response.content_part.added": obj({**_IN_PART, "part": CONTENT_PART}),
    "response.content_part.done": obj({**_IN_PART, "part": CONTENT_PART}),
    "response.output_text.delta": obj({**_IN_PART, "delta": string, "logprobs": array(LOGPROB)}),
    "response.output_text.done": obj({**_IN_PART, "text": string, "logprobs": array(LOGPROB)}),
    "response.refusal.delta": obj({**_IN_PART, "delta": string}),
    "response.refusal.done": obj({**_IN_PART, "refusal": string}),
    "response.function_call_arguments.delta": obj(
        {**_NUMBERED, "item_id": string, "output_index": integer, "delta": string}
    ),
    "response.function_call_arguments.done": obj(
        {**_NUMBERED, "item_id": string, "output_index": integer, "arguments": string}
    ),
    "response.reasoning_text.delta": obj({**_IN_PART, "delta": string}),
    "response.reasoning_text.done": obj({**_IN_PART, "text": string}),
    "error": obj(
        {
            **_NUMBERED,
            "error": obj({"type": string, "code": nullable(string), "message": string, "param": nullable(string)}),
        }
    ),  # fmt: skip
}


def response_problems(response: Any) -> list[str]:
    return RESPONSE(response, "response")


def event_problems(event: Any) -> list[str]:
    kind = event.get("type") if isinstance(event, dict) else None
    if kind not in EVENTS:
        return [f"event: not an Open Responses event type: {kind!r}"]
    return EVENTS[kind](event, kind)


def parse_stream(body: str) -> tuple[list[dict[str, Any]], list[str]]:
    """SSE as the spec's own harness reads it (LF lines, one `data:` line an event, `event:` matching the
    payload's type, `[DONE]` last); returns the events and what is wrong with the stream's framing."""
    events, problems = [], []
    if "\r\n" in body:
        problems.append("stream: CRLF line ends (the spec's parser reads none of those events)")
    done = False
    for block in body.split("\n\n"):
        if not block.strip():
            continue
        lines = block.split("\n")
        data = [line[5:].strip() for line in lines if line.startswith("data:")]
        named = [line[6:].strip() for line in lines if line.startswith("event:")]
        if len(data) != 1:
            problems.append(f"stream: an event needs one data: line, got {len(data)}")
            continue
        if data[0] == "[DONE]":
            done = True
            continue
        if done:
            problems.append("stream: events after [DONE]")
        event = json.loads(data[0])
        if named and named[0] != event.get("type"):
            problems.append(f"stream: event: {named[0]} but the payload's type is {event.get('type')}")
        events.append(event)
    if not done:
        problems.append("stream: no [DONE] at the end")
    numbers = [event.get("sequence_number") for event in events]
    if numbers != list(range(len(events))):
        problems.append(f"stream: sequence numbers are not 0, 1, 2, ... without gaps: {numbers}")
    return events, problems
