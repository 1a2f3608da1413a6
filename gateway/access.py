"""What a tenant may reach: its own jobs, found by id, and a record shown as its tenant may see it.

A job of another tenant is answered exactly like a job that never existed (the same 404), so ids, which
travel in response ids and headers, give nothing away.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from api_client import AsyncInferQClient, AsyncJobHandle
from gateway.errors import ApiError, tenant_message
from gateway.tenants import Tenant
from tasks.errors import error_from_info
from tasks.schemas import JobRecord

# Where a job ran says which machines the fleet has: an operator's business, not a tenant's.
ADMIN_ONLY_RECORD_FIELDS = frozenset({"worker", "host"})


def tenant_of(request: Request) -> Tenant:
    return request.state.tenant


async def find_owned_job(client: AsyncInferQClient, job_id: str, tenant: Tenant) -> AsyncJobHandle | None:
    handle = await client.find_job(job_id)
    if handle is None or not tenant.may_see(handle.meta.owner):
        return None
    return handle


def owned_or_404(fields: dict[str, str] | None, tenant: Tenant, what: str, ident: str) -> dict[str, str]:
    """A Batch API object (a file, a batch: a Redis hash with its `owner`) if this tenant may see it;
    otherwise the 404 of an id that never was."""
    if fields is None or not tenant.may_see(fields["owner"]):
        raise ApiError(404, f"no {what} {ident!r}", type="invalid_request_error", param=f"{what}_id", code="not_found")
    return fields


def record_as_seen_by(tenant: Tenant, record: JobRecord) -> dict[str, Any]:
    shown = record.model_dump(mode="json")
    if not tenant.admin:
        for name in ADMIN_ONLY_RECORD_FIELDS:
            shown.pop(name, None)
        if record.error is not None:  # an engine's exception text stays with the operator, as in every answer
            shown["error"]["message"] = tenant_message(error_from_info(record.error, record))
    return shown
