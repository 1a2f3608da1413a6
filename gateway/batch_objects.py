"""The Batch API's objects, in OpenAI's shapes: a file, a batch, and the body that creates a batch.

A batch is kept as a Redis hash of strings (tasks/batch_store.py); `batch_object` reads one into OpenAI's
batch object, with inferq's progress beside it (`inferq`: lines in flight, output tokens, an ETA).
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

STATUSES = ("validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling", "cancelled")
ENDED = frozenset({"failed", "completed", "expired", "cancelled"})
_WINDOW = re.compile(r"^([1-9][0-9]{0,3})h$")


class CreateBatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_file_id: str = Field(min_length=1, max_length=200)
    endpoint: Literal["/v1/chat/completions", "/v1/completions", "/v1/score"]
    completion_window: str = Field("24h", description="hours the batch may take (OpenAI's `24h`); then it expires")
    metadata: dict[str, str] | None = Field(None, max_length=16)

    @field_validator("completion_window")
    @classmethod
    def _hours(cls, window: str) -> str:
        if not _WINDOW.match(window):
            raise ValueError("must be a number of hours such as '24h'")
        return window

    def window_s(self) -> int:
        return int(self.completion_window.removesuffix("h")) * 3600


def file_object(fields: dict[str, str]) -> dict[str, Any]:
    return {
        "id": fields["id"],
        "object": "file",
        "bytes": int(fields["bytes"]),
        "created_at": int(fields["created_at"]),
        "expires_at": None,
        "filename": fields["filename"],
        "purpose": fields["purpose"],
        "status": "processed",
        "status_details": None,
    }


def batch_object(fields: dict[str, str]) -> dict[str, Any]:
    def time_of(name: str) -> int | None:
        return int(fields[name]) if name in fields else None

    errors = json.loads(fields["errors"]) if "errors" in fields else None
    return {
        "id": fields["id"],
        "object": "batch",
        "endpoint": fields["endpoint"],
        "errors": None if errors is None else {"object": "list", "data": errors},
        "input_file_id": fields["input_file_id"],
        "completion_window": fields["completion_window"],
        "status": fields["status"],
        "output_file_id": fields.get("output_file_id"),
        "error_file_id": fields.get("error_file_id"),
        **{f"{status}_at": time_of(f"{status}_at") for status in STATUSES if status != "validating"},
        "created_at": int(fields["created_at"]),
        "expires_at": int(fields["expires_at"]),
        "request_counts": {name: int(fields.get(name, 0)) for name in ("total", "completed", "failed")},
        "metadata": json.loads(fields["metadata"]) if fields.get("metadata") else None,
        "inferq": {
            "in_flight": int(fields.get("in_flight", 0)),
            "output_tokens": int(fields.get("output_tokens", 0)),
            "eta_s": float(fields["eta_s"]) if fields.get("eta_s") else None,
        },
    }
