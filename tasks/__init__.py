"""The producer <-> worker contract: payloads, records, events, errors, names and the Celery app. Torch-free."""

from tasks.app import make_app
from tasks.config import QueueSettings
from tasks.errors import (
    ClientClosed,
    JobCancelled,
    JobError,
    JobExpired,
    JobFailed,
    JobLost,
    JobTimeLimit,
    JobTimeout,
    NoSuchModel,
    QueueFull,
    QuotaExceeded,
)
from tasks.schemas import ChatJob, FinalEvent, JobRecord, RestartEvent, ScoreJob, TokenEvent

__all__ = [
    "ChatJob",
    "ClientClosed",
    "FinalEvent",
    "JobCancelled",
    "JobError",
    "JobExpired",
    "JobFailed",
    "JobLost",
    "JobRecord",
    "JobTimeLimit",
    "JobTimeout",
    "NoSuchModel",
    "QueueFull",
    "QuotaExceeded",
    "QueueSettings",
    "RestartEvent",
    "ScoreJob",
    "TokenEvent",
    "make_app",
]
