"""Responses API objects built from what Redis holds of a job: its meta, its record, its text so far.

Ids are the job's: `resp_<job id>`, `msg_<job id>`, so any gateway can answer for any response.
"""

from __future__ import annotations

from typing import Any, Literal

from tasks.schemas import JobMeta, JobRecord, JobStatus

RESPONSE_PREFIX = "resp_"
MESSAGE_PREFIX = "msg_"

OpenStatus = Literal["queued", "in_progress"]


def response_id(job_id: str) -> str:
    return f"{RESPONSE_PREFIX}{job_id}"


def job_id_of(response_id_: str) -> str | None:
    return response_id_.removeprefix(RESPONSE_PREFIX) if response_id_.startswith(RESPONSE_PREFIX) else None


def message_id(job_id: str) -> str:
    return f"{MESSAGE_PREFIX}{job_id}"


def message_item(job_id: str, text: str, status: Literal["in_progress", "completed", "incomplete"]) -> dict[str, Any]:
    content = [output_text(text)] if status != "in_progress" or text else []
    return {"type": "message", "id": message_id(job_id), "status": status, "role": "assistant", "content": content}


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def response_object(meta: JobMeta, record: JobRecord | None, open_status: OpenStatus = "queued") -> dict[str, Any]:
    """The response as OpenAI shapes it; `open_status` is used while the job has no record."""
    body: dict[str, Any] = {
        "id": response_id(meta.job_id),
        "object": "response",
        "created_at": int(meta.queued_at),
        "model": meta.model,
        "status": open_status,
        "output": [],
        "usage": None,
        "error": None,
        "incomplete_details": None,
        # inferq keeps no copy of the request: these echo nothing rather than a guess.
        "instructions": None,
        "metadata": {},
        "temperature": None,
        "top_p": None,
        "tools": [],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
    }
    if record is not None:
        body.update(_ended(meta.job_id, record))
    return body


def _ended(job_id: str, record: JobRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {"status": terminal_status(record)}
    if record.responses:
        response = record.responses[0]  # the Responses API has no `n`: one answer
        item_status = "completed" if response.finish_reason == "stop" else "incomplete"
        fields["output"] = [message_item(job_id, response.response_text, item_status)]
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
        fields["error"] = {"code": "server_error", "message": f"{record.error.type}: {record.error.message}"}
    return fields


def terminal_status(record: JobRecord) -> Literal["completed", "incomplete", "cancelled", "failed"]:
    if record.status == JobStatus.CANCELLED:
        return "cancelled"
    if record.status != JobStatus.SUCCEEDED:
        return "failed"
    length_cut = any(response.finish_reason == "length" for response in record.responses or ())
    return "incomplete" if length_cut else "completed"
