"""The gateway's view of the fleet: which models live workers serve, checked before a job is queued."""

from __future__ import annotations

from fastapi import Request

from api_client import AsyncInferQClient
from gateway.errors import unknown_model
from tasks.schemas import WorkerInfo


def inferq_client(request: Request) -> AsyncInferQClient:
    return request.app.state.inferq


async def live_workers(client: AsyncInferQClient) -> list[WorkerInfo]:
    # The store's fleet view: one registry scan a second for all requests of this process.
    return await client.store.fleet.workers()


async def require_served(client: AsyncInferQClient, model: str) -> None:
    """404 now, rather than a job that waits for a worker nobody runs (OpenAI's "model not found")."""
    served = {info.model for info in await live_workers(client)}
    if model not in served:
        raise unknown_model(model, served)
