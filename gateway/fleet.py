"""The gateway's view of the fleet: which models live workers serve, checked before a job is queued."""

from __future__ import annotations

from typing import Literal

from fastapi import Request

from api_client import AsyncInferQClient
from engines.errors import InvalidRequest
from gateway.errors import unknown_model
from tasks.schemas import WorkerInfo


def inferq_client(request: Request) -> AsyncInferQClient:
    return request.app.state.inferq


async def live_workers(client: AsyncInferQClient) -> list[WorkerInfo]:
    # The store's fleet view: one registry scan a second for all requests of this process.
    return await client.store.fleet.workers()


async def require_served(
    client: AsyncInferQClient, model: str, kind: Literal["chat", "score"], max_new_tokens: int | None = None
) -> None:
    """Refuses now what no worker could do, rather than queue a job that fails later: a model nobody serves
    (404, OpenAI's "model not found"), chat of a scoring model and scores of a chat model, and a `max_tokens`
    the model's context cannot hold (OpenAI refuses those too)."""
    serving = await client.store.fleet.serving(model)
    if not serving:
        raise unknown_model(model, client.store.fleet.served())
    generates = serving[0].can_generate
    if kind == "chat" and not generates:
        raise InvalidRequest(f"{model!r} is a scoring model: ask it for scores (POST /v1/score)", field="model")
    if kind == "score" and generates:
        raise InvalidRequest(f"{model!r} generates text: scores come from a reward model", field="model")
    context = min((info.context_length for info in serving if info.context_length), default=None)
    if max_new_tokens is not None and context is not None and max_new_tokens > context:
        raise InvalidRequest(
            f"{max_new_tokens} is more tokens than the model's context holds ({context}, prompt included)",
            field="max_new_tokens",
        )
