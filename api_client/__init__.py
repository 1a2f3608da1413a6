"""The producer side: enqueue chat and scoring jobs, read their tokens and records. Torch-free."""

from api_client.async_client import AsyncInferQClient
from api_client.client import InferQClient, JobHandle
from api_client.handle import AsyncJobHandle
from engines.errors import EngineError, InferqError, InvalidRequest
from engines.schemas import GenerationParams, Message, Response
from tasks.errors import (
    ClientClosed,
    JobCancelled,
    JobError,
    JobExpired,
    JobFailed,
    JobLost,
    JobRestarted,
    JobTimeLimit,
    JobTimeout,
    NoSuchModel,
    QueueFull,
    QuotaExceeded,
)
from tasks.schemas import JobRecord, OwnerQuota

__all__ = [
    "AsyncInferQClient",
    "AsyncJobHandle",
    "ClientClosed",
    "EngineError",
    "GenerationParams",
    "InferQClient",
    "InferqError",
    "InvalidRequest",
    "JobCancelled",
    "JobError",
    "JobExpired",
    "JobFailed",
    "JobLost",
    "JobHandle",
    "JobRecord",
    "JobRestarted",
    "JobTimeLimit",
    "JobTimeout",
    "Message",
    "NoSuchModel",
    "OwnerQuota",
    "QueueFull",
    "QuotaExceeded",
    "Response",
]
