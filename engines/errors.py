"""The engine-side branch of inferq's one error tree (`InferqError`, `InvalidRequest`, `EngineError` and its
children). The whole tree is drawn once, in tasks/errors.py; engines cannot import tasks, so these classes
live here and tasks re-exports them.

Backend exceptions never leave an engine as they are: each engine translates them at its edge
(`raise EngineError(...) from exc`), the way httpx maps httpcore's errors.
"""

from __future__ import annotations


class InferqError(Exception):
    """Base of every error inferq raises on purpose."""

    job_id: str | None = None  # the job it ended, when raised again from that job's record

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __reduce__(self):
        # keeps `field` when an error is pickled across a process boundary
        return (_rebuild, (type(self), self.message, self.field))

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


def _rebuild(cls: type[InferqError], message: str, field: str | None) -> InferqError:
    return cls(message, field=field)


class InvalidRequest(InferqError):
    """The request itself is wrong (a field out of range, an unknown role, a prompt too long)."""


class EngineError(InferqError):
    """The backend failed this request. Recoverable: the engine keeps serving."""


class EngineUnavailable(EngineError):
    """The backend is unknown or its extra is not installed."""


class EngineOverloaded(EngineError):
    """The backend ran out of memory or capacity for this request."""


class EngineDead(EngineError):
    """The backend cannot serve again in this process."""
