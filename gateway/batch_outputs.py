"""What a batch's OpenAI output and error lines hold (the CLI's and the Batch API's alike).

OpenAI's line: `{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}`; a line that
ran and failed carries the error body the gateway would have answered with, under its status code; a line
refused before it ran has no response and an `error` of its own.
"""

from __future__ import annotations

from typing import Any

from batch.lines import BatchLine, LineError
from engines.errors import InferqError
from gateway.chat import completion_object
from gateway.completions import text_completion_object
from gateway.errors import api_error_of
from gateway.score import score_object
from tasks.schemas import JobRecord

REQUEST_PREFIX = "batch_req_"


def answered_line(line: BatchLine, record: JobRecord) -> dict[str, Any]:
    if line.url == "/v1/chat/completions":
        body = completion_object(record)
    elif line.url == "/v1/completions":
        body = text_completion_object(record, line.prompt if line.echo else "")
    else:
        body = score_object(record)
    response = {"status_code": 200, "request_id": record.job_id, "body": body}
    return {"id": f"{REQUEST_PREFIX}{record.job_id}", "custom_id": line.custom_id, "response": response, "error": None}


def failed_line(line: BatchLine, job_id: str, error: InferqError) -> dict[str, Any]:
    api_error = api_error_of(error)
    response = {"status_code": api_error.status, "request_id": job_id, "body": api_error.body()}
    return {"id": f"{REQUEST_PREFIX}{job_id}", "custom_id": line.custom_id, "response": response, "error": None}


def refused_line(refusal: LineError) -> dict[str, Any]:
    message = refusal.message if refusal.param is None else f"{refusal.param}: {refusal.message}"
    return {
        "id": f"{REQUEST_PREFIX}line-{refusal.index}",
        "custom_id": refusal.custom_id,
        "response": None,
        "error": {"code": "invalid_request", "message": message, "line": refusal.index + 1},
    }
