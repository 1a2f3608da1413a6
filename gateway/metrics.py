"""`GET /metrics` for Prometheus: the Batch API's unfinished batches, read from Redis when scraped, so any
gateway replica answers for every batch of the fleet (the workers' own metrics are worker/metrics.py).

Admins only: which batches run, whose, and how far along, is no other tenant's business (Prometheus sends
an admin key as `Authorization: Bearer`).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.access import tenant_of
from gateway.errors import ApiError
from gateway.fleet import inferq_client
from tasks.batch_store import BatchInfo

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    if not tenant_of(request).admin:
        raise ApiError(403, "metrics are for admin keys", type="permission_error", code="admin_only")
    registry = CollectorRegistry()
    registry.register(_Batches(await inferq_client(request).batches()))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class _Batches(Collector):
    def __init__(self, batches: list[BatchInfo]) -> None:
        self._batches = batches

    def collect(self):
        running = GaugeMetricFamily("inferq_batches_running", "Batch API batches not ended yet")
        running.add_metric([], len(self._batches))
        lines = GaugeMetricFamily(
            "inferq_batch_lines", "a running batch's lines, by state", labels=["batch", "owner", "state"]
        )
        tokens = GaugeMetricFamily(
            "inferq_batch_output_tokens", "tokens a running batch has generated", labels=["batch", "owner"]
        )
        eta = GaugeMetricFamily(
            "inferq_batch_eta_seconds", "a running batch's estimated time left", labels=["batch", "owner"]
        )
        for batch in self._batches:
            for state in ("total", "completed", "failed", "in_flight"):
                lines.add_metric([batch.id, batch.owner, state], getattr(batch, state))
            tokens.add_metric([batch.id, batch.owner], batch.output_tokens)
            if batch.eta_s is not None:
                eta.add_metric([batch.id, batch.owner], batch.eta_s)
        yield from (running, lines, tokens, eta)
