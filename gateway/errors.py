"""inferq's error tree translated into OpenAI's error shape and HTTP status, at the gateway's edge.

    {"error": {"message": ..., "type": ..., "param": <the field>, "code": ...}}

The one table below decides every status; no route picks a status itself.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from engines.errors import EngineError, EngineOverloaded, EngineUnavailable, InferqError, InvalidRequest
from tasks.errors import JobCancelled, JobExpired, JobTimeLimit, JobTimeout, NoSuchModel, QueueFull


class ApiError(Exception):
    """An error the gateway answers with, already in OpenAI's terms."""

    def __init__(self, status: int, message: str, *, type: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


# Most specific first.
_STATUS_OF: list[tuple[type[InferqError], int, str, str]] = [
    (InvalidRequest, 400, "invalid_request_error", "invalid_value"),
    (QueueFull, 429, "rate_limit_error", "queue_full"),
    (JobTimeLimit, 504, "timeout_error", "time_limit_exceeded"),
    (NoSuchModel, 404, "invalid_request_error", "model_not_found"),
    (JobExpired, 504, "timeout_error", "deadline_exceeded"),
    (JobTimeout, 504, "timeout_error", "deadline_exceeded"),
    (JobCancelled, 409, "invalid_request_error", "cancelled"),
    (EngineOverloaded, 503, "server_error", "engine_overloaded"),
    (EngineUnavailable, 503, "server_error", "engine_unavailable"),
    (EngineError, 502, "server_error", "engine_error"),
]


def api_error_of(error: InferqError) -> ApiError:
    for cls, status, kind, code in _STATUS_OF:
        if isinstance(error, cls):
            return ApiError(status, str(error), type=kind, param=error.field, code=code)
    return ApiError(500, f"{type(error).__name__}: {error}", type="server_error", param=error.field, code="job_failed")


def unknown_model(model: str, served: set[str]) -> ApiError:
    listing = ", ".join(sorted(served)) or "none"
    return ApiError(
        404,
        f"no live worker serves model {model!r} (served: {listing})",
        type="invalid_request_error",
        param="model",
        code="model_not_found",
    )


def install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    async def on_inferq_error(request: Request, exc: InferqError) -> JSONResponse:
        return await on_api_error(request, api_error_of(exc))

    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        location = [str(part) for part in first["loc"] if part not in ("body", "query", "path")]
        message = first["msg"].removeprefix("Value error, ")
        error = ApiError(400, message, type="invalid_request_error", param=".".join(location) or None)
        return await on_api_error(request, error)

    async def on_http_error(request: Request, exc: HTTPException) -> JSONResponse:
        error = ApiError(exc.status_code, str(exc.detail), type="invalid_request_error", code="not_found")
        return await on_api_error(request, error)

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(InferqError, on_inferq_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
