"""What a batch's OpenAI output and error lines hold (the CLI's and the Batch API's alike), and the Batch API's
output and error files that gather them.

OpenAI's line: `{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}`; a line that
ran and failed carries the error body the gateway would have answered with, under its status code; a line
refused before it ran has no response and an `error` of its own.
"""

from __future__ import annotations

import json
import time
from typing import Any

from batch.file_store import FileStore
from batch.lines import BatchLine, LineError
from engines.errors import InferqError
from gateway.chat import completion_object
from gateway.completions import text_completion_object
from gateway.errors import api_error_of
from gateway.score import score_object
from tasks.batch_store import BatchStore
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


def expired_line(line: BatchLine) -> dict[str, Any]:
    """OpenAI's expiry: a line not answered in the batch's window gets a `batch_expired` error of its own."""
    error = {"code": "batch_expired", "message": "the batch expired before this line ran"}
    return {
        "id": f"{REQUEST_PREFIX}expired_{line.index}",
        "custom_id": line.custom_id,
        "response": None,
        "error": error,
    }


def output_file_id(batch_id: str, succeeded: bool) -> str:
    """Fixed by the batch, so two coordinators that ever both finalized it write the same file."""
    return f"file-{batch_id.removeprefix('batch_')}-{'output' if succeeded else 'errors'}"


async def write_output_files(
    files: FileStore, store: BatchStore, batch_id: str, owner: str, lines: list[BatchLine], refusals: list[LineError]
) -> dict[str, str]:
    """Writes a batch's output and error files, each in input order: its answered lines, and its refused lines
    (read from its input again: no custom_id stands for them). Returns their ids, by the batch's field names."""
    order = {line.custom_id: line.index for line in lines}
    written: dict[str, str] = {}
    for succeeded in (True, False):
        answers = [(order.get(custom_id, len(order)), custom_id, line)
                   async for custom_id, line in store.lines(batch_id, succeeded)]  # fmt: skip
        if not succeeded:
            answers += [(refusal.index, "", json.dumps(refused_line(refusal))) for refusal in refusals]
        if not answers:
            continue
        file_id = output_file_id(batch_id, succeeded)
        data = "".join(f"{line}\n" for _, _, line in sorted(answers)).encode()
        await files.write(file_id, data)
        created_at = int(time.time())
        await store.add_file(file_id, owner, created_at, {
            "id": file_id, "bytes": str(len(data)), "created_at": str(created_at), "purpose": "batch_output",
            "filename": f"{batch_id}_{'output' if succeeded else 'error'}.jsonl", "files_url": files.url,
        })  # fmt: skip
        written["output_file_id" if succeeded else "error_file_id"] = file_id
    return written
