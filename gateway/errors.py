"""inferq's error tree translated into OpenAI's error shape and HTTP status, at the gateway's edge.

    {"error": {"message": ..., "type": ..., "param": <the field>, "code": ...}}

The one table below decides every status; no route picks a status itself.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from engines.errors import EngineError, EngineOverloaded, EngineUnavailable, InferqError, InvalidRequest
from tasks.errors import (
    ClientClosed,
    JobCancelled,
    JobExpired,
    JobLost,
    JobRestarted,
    JobTimeLimit,
    JobTimeout,
    NoSuchModel,
    QueueFull,
    QuotaExceeded,
)


class ApiError(HTTPException):
    """An error the gateway answers with, already in OpenAI's terms. An HTTPException, so that FastAPI
    passes it on untouched even from inside its body parsing."""

    def __init__(self, status: int, message: str, *, type: str, param: str | None = None, code: str | None = None):
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


# Most specific first. The last column: whether the error's own message may reach the tenant. inferq's own
# words may; an engine's error carries the text of whatever exception the engine raised, which may quote
# another tenant's data or the worker's paths, so the tenant gets the job's id instead and the operator
# finds the cause by it in the worker's log and in the record (which the Python client reads whole).
_STATUS_OF: list[tuple[type[InferqError], int, str, str, bool]] = [
    (InvalidRequest, 400, "invalid_request_error", "invalid_value", True),
    (QueueFull, 429, "rate_limit_error", "queue_full", True),
    (QuotaExceeded, 429, "rate_limit_error", "quota_exceeded", True),
    (JobTimeLimit, 504, "timeout_error", "time_limit_exceeded", True),
    (NoSuchModel, 404, "invalid_request_error", "model_not_found", True),
    (JobExpired, 504, "timeout_error", "deadline_exceeded", True),
    (JobTimeout, 504, "timeout_error", "deadline_exceeded", True),
    (JobCancelled, 409, "invalid_request_error", "cancelled", True),
    (JobRestarted, 503, "server_error", "job_restarted", True),
    (JobLost, 500, "server_error", "job_lost", True),
    (ClientClosed, 503, "server_error", "shutting_down", True),  # the gateway stops while it waits
    (EngineOverloaded, 503, "server_error", "engine_overloaded", False),
    (EngineUnavailable, 503, "server_error", "engine_unavailable", True),
    (EngineError, 502, "server_error", "engine_error", False),
]


def api_error_of(error: InferqError, field_names: dict[str, str] | None = None) -> ApiError:
    """`field_names` maps inferq's names of a request's fields to the ones its client sent (max_new_tokens is
    a chat completion's max_tokens), so that every error names the field as the client knows it."""
    param = _client_field(error.field, field_names or {})
    message = error.message if param is None else f"{param}: {error.message}"
    for cls, status, kind, code, tells in _STATUS_OF:
        if isinstance(error, cls):
            return ApiError(status, message if tells else _internal_message(error), type=kind, param=param, code=code)
    return ApiError(500, _internal_message(error), type="server_error", code="job_failed")


def tenant_message(error: InferqError) -> str:
    """The error's message as a tenant may read it: inferq's own words, or the job's id in place of an engine's."""
    for cls, *_, tells in _STATUS_OF:
        if isinstance(error, cls):
            return error.message if tells else _internal_message(error)
    return _internal_message(error)


def _internal_message(error: InferqError) -> str:
    """What a tenant learns of a failure whose message is not inferq's own: the job's id."""
    if error.job_id is None:
        return "the server had an error while running the job"
    return f"the server had an error while running job {error.job_id}; its operator can look it up by that id"


def _client_field(field: str | None, field_names: dict[str, str]) -> str | None:
    if field is None:
        return None
    head, dot, rest = field.partition(".")
    return field_names.get(head, head) + dot + rest


def unknown_model(model: str, served: set[str]) -> ApiError:
    listing = ", ".join(sorted(served)) or "none"
    return ApiError(
        404,
        f"no live worker serves model {model!r} (served: {listing})",
        type="invalid_request_error",
        param="model",
        code="model_not_found",
    )


def _client_path(location: tuple[str | int, ...]) -> str | None:
    """A pydantic error's location as the client's dotted path: no `body`, no union member tags."""
    parts = [str(part) for part in location if part not in ("body", "query", "path") and not _member_tag(part)]
    return ".".join(parts) or None


def _member_tag(part: str | int) -> bool:
    # pydantic names each member of a union it tried: `str`, `constrained-str`, `list[...]`, `function-after[...]`
    return isinstance(part, str) and (
        part in ("str", "int", "float", "bool", "none") or part.startswith("constrained-") or "[" in part
    )


def install_error_handlers(app: FastAPI, retry_after_s: int) -> None:
    async def on_api_error(_: Request, exc: ApiError) -> JSONResponse:
        headers = {"Retry-After": str(retry_after_s)} if exc.status == 429 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    async def on_inferq_error(request: Request, exc: InferqError) -> JSONResponse:
        field_names = getattr(request.state, "field_names", None)
        return await on_api_error(request, api_error_of(exc, field_names))

    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        # A union field reports one error per member; the one that is not "wrong type" says what is wrong.
        first = next((error for error in errors if not error["type"].endswith("_type")), errors[0])
        message = first["msg"].removeprefix("Value error, ")
        error = ApiError(400, message, type="invalid_request_error", param=_client_path(first["loc"]))
        return await on_api_error(request, error)

    async def on_http_error(request: Request, exc: HTTPException) -> JSONResponse:
        # Starlette's own refusals: an unknown route (404), a method it does not take (405), a body it cannot parse
        code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
        error = ApiError(exc.status_code, str(exc.detail), type="invalid_request_error", code=code)
        return await on_api_error(request, error)

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(InferqError, on_inferq_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
