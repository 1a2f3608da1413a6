"""OpenAI's Batch API: `POST /v1/batches`, `GET /v1/batches/{id}`, `GET /v1/batches` (newest first, `after` and
`limit`), `POST /v1/batches/{id}/cancel`. A batch is its tenant's, like its input file; the gateways'
coordinators run it (gateway/batch_coordinator.py). An `Idempotency-Key` makes a retried create the same batch;
the key used again for another body is a 400 naming `idempotency_key`, as on the other routes.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid

from fastapi import APIRouter, Query, Request

from api_client.jobs import idempotent_job_id
from gateway.access import owned_or_404, tenant_of
from gateway.batch_objects import ENDED, CreateBatchRequest, batch_object
from gateway.errors import ApiError
from gateway.files import file_store, owned_file
from gateway.fleet import inferq_client
from gateway.idempotency import idempotency_key
from gateway.strict_json import StrictJsonRoute

router = APIRouter(route_class=StrictJsonRoute)


async def owned_batch(request: Request, batch_id: str) -> dict[str, str]:
    fields = await inferq_client(request).store.batches.batch(batch_id)
    return owned_or_404(fields, tenant_of(request), "batch", batch_id)


def _request_digest(body: CreateBatchRequest) -> str:
    """What a retry must ask again to be the same create."""
    return hashlib.sha256(json.dumps(body.model_dump(), sort_keys=True).encode()).hexdigest()[:32]


def _the_batch_retried(fields: dict[str, str], digest: str) -> dict:
    if fields.get("request_digest", digest) != digest:  # a batch made before digests were kept: its key alone
        raise ApiError(400, "this key was used for another batch: a retry must ask the same",
                       type="invalid_request_error", param="idempotency_key", code="invalid_value")  # fmt: skip
    return batch_object(fields)


@router.post("/v1/batches")
async def create_batch(body: CreateBatchRequest, request: Request):
    tenant, store = tenant_of(request), inferq_client(request).store.batches
    key, digest = idempotency_key(request), _request_digest(body)
    batch_id = f"batch_{uuid.uuid4().hex if key is None else idempotent_job_id(tenant.name, f'batches:{key}')}"
    if key is not None and (fields := await store.batch(batch_id)) is not None:
        return _the_batch_retried(fields, digest)  # the retry of a create that went through
    try:
        input_file = await owned_file(request, body.input_file_id)
    except ApiError:
        raise ApiError(400, f"no file {body.input_file_id!r}", type="invalid_request_error",
                       param="input_file_id", code="invalid_value") from None  # fmt: skip
    if input_file.get("files_url") != file_store(request).url:
        raise ApiError(400, "is in another file store than this gateway's (INFERQ_GATEWAY_FILES_URL)",
                       type="invalid_request_error", param="input_file_id", code="invalid_value")  # fmt: skip
    if input_file["purpose"] != "batch":
        raise ApiError(400, "must be a file uploaded with purpose 'batch'", type="invalid_request_error",
                       param="input_file_id", code="invalid_value")  # fmt: skip
    created_at = int(time.time())
    fields = {
        "id": batch_id, "endpoint": body.endpoint, "input_file_id": body.input_file_id,
        "completion_window": body.completion_window, "status": "validating", "created_at": str(created_at),
        "expires_at": str(created_at + body.window_s()), "metadata": json.dumps(body.metadata or {}),
        "files_url": file_store(request).url,  # the gateways that may drive it: those using the same store
        "request_digest": digest,
    }  # fmt: skip
    # A cap per tenant, so one tenant's many batches cannot take every batch row from the others' (the fleet's
    # batch share is served first come, first served) nor become more jobs than a window each bounds.
    cap = request.app.state.settings.tenant_max_batches
    outcome = await store.add_batch(batch_id, tenant.name, created_at, fields, max_active=cap, ended=ENDED)
    if outcome == "exists":  # a create under the same key won
        return _the_batch_retried(await store.batch(batch_id), digest)
    if outcome == "over_cap":
        raise ApiError(429, f"{tenant.name!r} has {cap} batches not finished yet, its cap "
                       "(INFERQ_GATEWAY_TENANT_MAX_BATCHES); try again once one ends", type="rate_limit_error",
                       code="too_many_batches")  # fmt: skip
    return batch_object({**fields, "owner": tenant.name})


@router.get("/v1/batches/{batch_id}")
async def retrieve_batch(batch_id: str, request: Request):
    return batch_object(await owned_batch(request, batch_id))


@router.get("/v1/batches")
async def list_batches(request: Request, after: str | None = None, limit: int = Query(20, ge=1, le=100)):
    store = inferq_client(request).store.batches
    ids = await store.batches_of(tenant_of(request).name, after, limit + 1)
    found = [fields for batch_id in ids[:limit] if (fields := await store.batch(batch_id)) is not None]
    data = [batch_object(fields) for fields in found]
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": len(ids) > limit}  # fmt: skip


@router.post("/v1/batches/{batch_id}/cancel")
async def cancel_batch(batch_id: str, request: Request):
    fields = await owned_batch(request, batch_id)
    store = inferq_client(request).store.batches
    if fields["status"] in ENDED - {"cancelled"}:
        raise ApiError(409, f"the batch has already ended ({fields['status']})", type="invalid_request_error",
                       param="batch_id", code="batch_ended")  # fmt: skip
    # A finalizing batch has every line answered: it completes (its files are being written).
    await store.transition(batch_id, "cancelling", int(time.time()), ("validating", "in_progress"))
    return batch_object(await store.batch(batch_id))
