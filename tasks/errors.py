"""inferq's error tree, and how an error crosses the queue.

    InferqError
    ├── InvalidRequest            bad input; `.field` names it (engines/errors.py)
    ├── EngineError               the backend failed; recoverable (engines/errors.py)
    │   ├── EngineUnavailable     unknown backend or missing extra
    │   ├── EngineOverloaded      out of memory or capacity
    │   └── EngineDead            unrecoverable; the worker exits and is restarted
    └── JobError                  what happened to a job on the queue
        ├── JobFailed             failed for a reason outside this tree (a bug, a dead worker, too many deliveries)
        ├── JobCancelled          cancelled; `.record` holds the text generated so far
        ├── JobTimeout            the client stopped waiting; the job may still run (also a TimeoutError)
        ├── JobRestarted          a stream reader learns that the job restarted on another worker
        ├── JobLost               the job vanished from Redis (a restart without persistence?)
        ├── ClientClosed          the client was closed while this waited for the job (which goes on)
        ├── QueueFull             refused at submit: the model's queue holds its cap (`.field` is "model")
        ├── QuotaExceeded         refused at submit: its owner has as many jobs in flight as its quota allows
        ├── JobTimeLimit          it ran longer than its max_runtime_s; `.record` keeps the partial text
        ├── LeaseLost             a worker's copy lost its lease to another delivery (stays in the worker)
        └── JobExpired            its deadline passed before it finished
            └── NoSuchModel       ...or no live worker has served its model for a grace period

The engine-side classes (InferqError, InvalidRequest, EngineError...) live in engines/errors.py, because
engines import nothing from tasks; this module re-exports them, and this is the only drawing of the tree.
An error crosses the queue as `ErrorInfo {type, message, field}`; the client raises the same class again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engines.errors import (
    EngineDead,
    EngineError,
    EngineOverloaded,
    EngineUnavailable,
    InferqError,
    InvalidRequest,
)

if TYPE_CHECKING:
    from tasks.schemas import ErrorInfo, JobRecord


class JobError(InferqError):
    """Something happened to a job; `.record` is its job record when one exists."""

    def __init__(self, message: str, *, field: str | None = None, record: JobRecord | None = None) -> None:
        super().__init__(message, field=field)
        self.record = record


class JobFailed(JobError):
    pass


class JobCancelled(JobError):
    pass


class JobTimeout(JobError, TimeoutError):
    pass


class JobExpired(JobError):
    pass


class NoSuchModel(JobExpired):
    pass


class JobRestarted(JobError):
    """A stream was interrupted: the job's worker died and the job runs again from the start.

    Text already read belongs to the void attempt; call `stream()` again to follow the new one.
    """


class JobLost(JobError):
    """The job's record and metadata are gone from Redis while someone waited for it."""


class ClientClosed(JobError):
    """The client was closed (from another task or thread) while this call waited for the job; the job goes
    on, and another client can find it by its id."""


class QueueFull(JobError):
    """Refused at submit: the model's queue already holds as many jobs as its workers allow."""


class QuotaExceeded(JobError):
    """Refused at submit: the job's owner (a gateway tenant) already has its quota of jobs in flight."""


class JobTimeLimit(JobError):
    """The job ran longer than its `max_runtime_s` (or the worker's default) and was stopped."""


class LeaseLost(JobError):
    """This worker's copy of a job lost its lease: another delivery runs the job now. Never recorded."""


ERRORS: dict[str, type[InferqError]] = {
    cls.__name__: cls
    for cls in (
        InferqError,
        InvalidRequest,
        EngineError,
        EngineUnavailable,
        EngineOverloaded,
        EngineDead,
        JobError,
        JobFailed,
        JobCancelled,
        JobTimeout,
        JobRestarted,
        JobLost,
        ClientClosed,
        QueueFull,
        QuotaExceeded,
        JobTimeLimit,
        JobExpired,
        NoSuchModel,
    )
}


def error_from_info(info: ErrorInfo, record: JobRecord | None = None) -> InferqError:
    """The exception an `ErrorInfo` describes; an unknown type (a newer worker) becomes JobFailed."""
    cls = ERRORS.get(info.type, JobFailed)
    if issubclass(cls, JobError):
        error = cls(info.message, field=info.field, record=record)
    else:
        error = cls(info.message, field=info.field)
    if record is not None:
        error.job_id = record.job_id
    return error
