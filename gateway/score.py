"""`POST /v1/score`: reward-model scores, one per text or per conversation (LLaMA-Factory's
`/v1/score/evaluation` body, plus `conversations` rendered with the model's chat template by its worker)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from gateway.access import tenant_of
from gateway.chat_schemas import ScoreRequest
from gateway.disconnect import unless_client_leaves
from gateway.fleet import inferq_client, require_served
from gateway.idempotency import idempotency_key, on_client_leaving
from gateway.messages import score_conversations
from gateway.strict_json import StrictJsonRoute
from tasks.schemas import JobRecord

router = APIRouter(route_class=StrictJsonRoute)

SCORE_PREFIX = "scoreeval-"


@router.post("/v1/score")
async def create_scores(body: ScoreRequest, request: Request):
    client, tenant = inferq_client(request), tenant_of(request)
    priority = tenant.priority(body.priority)  # a key's cap on urgency: a 400 past it
    await require_served(client, body.model, "score")
    conversations = None if body.conversations is None else score_conversations(body.conversations)
    handle = await client.submit_score(
        body.messages,
        body.model,
        conversations=conversations,
        max_length=body.max_length,
        deadline_s=body.deadline_s,
        max_runtime_s=body.max_runtime_s,
        priority=priority,
        owner=tenant.name,
        quota=tenant.quota,
        idempotency_key=idempotency_key(request),
    )
    record = await unless_client_leaves(request, handle.result(), on_client_leaving(request, handle))
    return score_object(record)


def score_object(record: JobRecord) -> dict[str, Any]:
    """A score evaluation, as the route answers it and a batch's output line holds it."""
    return {"id": f"{SCORE_PREFIX}{record.job_id}", "object": "score.evaluation", "model": record.model,
            "scores": record.scores}  # fmt: skip
