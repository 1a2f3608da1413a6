"""Responses API objects built from what Redis holds of a job: its meta (with the request's parameters, kept
for any replica to echo), its record, its text so far. Every field the Open Responses schema requires is
there, with its type (integers for times, explicit nulls, no null where a number is required).

Ids are the job's: `resp_<job id>`, `msg_<job id>`, `rs_<job id>`, `fc_<job id>_<n>`, so any gateway can
answer for any response.
"""

from __future__ import annotations

from typing import Any, Literal

from engines.schemas import Response
from gateway.errors import api_error_of
from gateway.openai_shapes import responses_logprobs
from tasks.errors import error_from_info
from tasks.schemas import JobMeta, JobRecord, JobStatus

RESPONSE_PREFIX = "resp_"
MESSAGE_PREFIX = "msg_"

OpenStatus = Literal["queued", "in_progress"]
ItemStatus = Literal["in_progress", "completed", "incomplete"]

# What a response echoes when its request did not say: OpenAI's defaults (the gateway sends these to the
# job too, so the echo is what ran).
DEFAULT_ECHO: dict[str, Any] = {
    "instructions": None,
    "tools": [],
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "text": {"format": {"type": "text"}},
    "temperature": 1.0,
    "top_p": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "top_logprobs": 0,
    "max_output_tokens": None,
    "max_tool_calls": None,
    "background": False,
    "store": True,
    "service_tier": "default",
    "metadata": {},
    "safety_identifier": None,
    "prompt_cache_key": None,
    "user": None,
}


def response_id(job_id: str) -> str:
    return f"{RESPONSE_PREFIX}{job_id}"


def job_id_of(response_id_: str) -> str | None:
    return response_id_.removeprefix(RESPONSE_PREFIX) if response_id_.startswith(RESPONSE_PREFIX) else None


def message_id(job_id: str) -> str:
    return f"{MESSAGE_PREFIX}{job_id}"


def reasoning_id(job_id: str) -> str:
    return f"rs_{job_id}"


def call_item_id(job_id: str, index: int) -> str:
    return f"fc_{job_id}_{index}"


def message_item(job_id: str, text: str, status: ItemStatus, logprobs: list[dict[str, Any]] | None = None) -> dict:
    content = [output_text(text, logprobs)] if status != "in_progress" else []
    return {"type": "message", "id": message_id(job_id), "status": status, "role": "assistant", "content": content}


def output_text(text: str, logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs or []}


def reasoning_item(job_id: str, text: str, status: ItemStatus) -> dict[str, Any]:
    content = [{"type": "reasoning_text", "text": text}] if status != "in_progress" else []
    return {"type": "reasoning", "id": reasoning_id(job_id), "summary": [], "content": content, "status": status}


def function_call_item(
    job_id: str, index: int, call_id: str, name: str, arguments: str, status: ItemStatus
) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": call_item_id(job_id, index),
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def response_object(
    meta: JobMeta,
    record: JobRecord | None,
    open_status: OpenStatus = "queued",
    output: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The response as the Responses API shapes it; `open_status` while the job has no record. `output`
    replaces the items built from the record (a stream passes the items it streamed)."""
    echo = {**DEFAULT_ECHO, **(meta.echo or {})}
    body: dict[str, Any] = {
        "id": response_id(meta.job_id),
        "object": "response",
        "created_at": int(meta.queued_at),
        "completed_at": None,
        "status": open_status,
        "incomplete_details": None,
        "model": meta.model,
        "previous_response_id": None,
        "output": output or [],
        "error": None,
        "truncation": "disabled",
        "reasoning": None,
        "usage": None,
        **{key: echo[key] for key in DEFAULT_ECHO if key != "user"},
    }
    if record is not None:
        body.update(_ended(meta, record, output, echo))
    return body


def _ended(meta: JobMeta, record: JobRecord, output: list[dict[str, Any]] | None, echo: dict) -> dict[str, Any]:
    fields: dict[str, Any] = {"status": terminal_status(record)}
    if record.timings.finished_at is not None:
        fields["completed_at"] = int(record.timings.finished_at)
    if record.responses:
        response = record.responses[0]  # the Responses API has no `n`: one answer
        fields["output"] = output if output is not None else output_items(meta.job_id, response, echo)
        if response.finish_reason == "length":
            fields["incomplete_details"] = {"reason": "max_output_tokens"}
    if record.usage is not None:
        fields["usage"] = {
            "input_tokens": record.usage.prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": record.usage.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": record.usage.total_tokens,
        }
    if record.error is not None and record.status != JobStatus.CANCELLED:
        # The message the gateway would answer with (no exception text from the worker); the code stays
        # `server_error`, the one value of the schema's enum that every such failure fits.
        answer = api_error_of(error_from_info(record.error, record))
        fields["error"] = {"code": "server_error", "message": answer.message}
    return fields


def output_items(job_id: str, response: Response, echo: dict[str, Any]) -> list[dict[str, Any]]:
    """The record's answer as output items: its thoughts, its text, its calls, in that order."""
    status: ItemStatus = "completed" if response.finish_reason in ("stop", "tool_calls") else "incomplete"
    items = []
    if response.reasoning_text is not None:
        items.append(reasoning_item(job_id, response.reasoning_text, "completed"))
    if response.response_text or not response.tool_calls:
        logprobs = responses_logprobs(response.logprobs) if echo.get("include_logprobs") else None
        items.append(message_item(job_id, response.response_text, status, logprobs))
    for index, call in enumerate(response.tool_calls or ()):
        items.append(function_call_item(job_id, index, call.id, call.name, call.arguments, "completed"))
    return items


def terminal_status(record: JobRecord) -> Literal["completed", "incomplete", "cancelled", "failed"]:
    if record.status == JobStatus.CANCELLED:
        return "cancelled"
    if record.status != JobStatus.SUCCEEDED:
        return "failed"
    length_cut = any(response.finish_reason == "length" for response in record.responses or ())
    return "incomplete" if length_cut else "completed"
