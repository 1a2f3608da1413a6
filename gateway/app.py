"""The gateway's FastAPI app: one `AsyncInferQClient` per process, the OpenAI routes, and the chat page.

Every request passes the front door first (gateway/front_door.py: the key, the body's size and pace),
and every body is parsed as standard JSON only (gateway/strict_json.py).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from api_client import AsyncInferQClient
from batch.file_store import open_file_store
from gateway import batches, chat, completions, files, metrics, responses, score
from gateway.access import find_owned_job, record_as_seen_by, tenant_of
from gateway.batch_coordinator import BatchCoordinator
from gateway.disconnect import ClientLeft
from gateway.errors import ApiError, install_error_handlers
from gateway.fleet import inferq_client, live_workers
from gateway.front_door import FrontDoor
from gateway.settings import GatewaySettings
from gateway.strict_json import StrictJsonRoute
from tasks.config import QueueSettings
from tasks.errors import JobTimeout

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"
# The page's record panel waits this long at most for the record of an answer it stopped.
MAX_RECORD_WAIT_S = 30.0

inferq_routes = APIRouter(route_class=StrictJsonRoute)


@inferq_routes.get("/v1/models")
async def list_models(request: Request):
    """The models live workers serve now, one entry a model, with inferq's view of its workers."""
    by_model: dict[str, list] = {}
    for info in await live_workers(inferq_client(request)):
        by_model.setdefault(info.model, []).append(info)
    models = [
        {
            "id": model,
            "object": "model",
            "created": int(min(info.started_at for info in workers)),
            "owned_by": "inferq",
            "inferq": {
                "engine": workers[0].engine,
                "can_generate": workers[0].can_generate,
                "context_length": workers[0].context_length,
                "adapters": sorted({a for info in workers for a in info.adapters}),
                "workers": len(workers),
            },
        }
        for model, workers in sorted(by_model.items())
    ]
    return {"object": "list", "data": models}


@inferq_routes.get("/inferq/jobs/{job_id}")
async def job_record(job_id: str, request: Request, wait_s: float = Query(0, ge=0, le=MAX_RECORD_WAIT_S)):
    """A job's record (timings, tokens; the worker and host for admins); 202 with `status: running` while
    it has none. Another tenant's job is a 404, like one that never existed."""
    tenant = tenant_of(request)
    handle = await find_owned_job(inferq_client(request), job_id, tenant)
    if handle is None:
        raise ApiError(404, f"no job {job_id!r}", type="invalid_request_error", param="job_id", code="not_found")
    record = await handle.record()
    if record is None and wait_s:
        try:
            async for _ in handle.events(timeout=wait_s):
                pass
        except JobTimeout:
            pass  # answered below as still running
        record = await handle.record()
    if record is None:
        return JSONResponse({"job_id": job_id, "status": "running"}, status_code=202)
    return JSONResponse(record_as_seen_by(tenant, record))


def create_app(queue_settings: QueueSettings | None = None, settings: GatewaySettings | None = None) -> FastAPI:
    queue_settings = queue_settings or QueueSettings()
    settings = settings or GatewaySettings()
    keys = settings.key_table()
    if keys.is_open:
        log.warning("no API keys configured (INFERQ_GATEWAY_API_KEYS / _API_KEYS_FILE): the gateway is open")

    file_store = open_file_store(settings.files_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async with AsyncInferQClient(settings=queue_settings) as client:
            app.state.inferq, app.state.files, app.state.settings = client, file_store, settings
            coordinator = BatchCoordinator(client, file_store, lease_s=settings.batch_lease_s,
                                           scan_s=settings.batch_scan_s, window=settings.batch_window,
                                           max_drives=settings.batch_max_drives)  # fmt: skip
            driving = asyncio.create_task(coordinator.run())
            try:
                yield
            finally:
                driving.cancel()
                await asyncio.gather(driving, return_exceptions=True)
                await file_store.aclose()

    # The OpenAPI schema stays (clients generate code from it), behind the key like every other route.
    app = FastAPI(title="inferq gateway", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_error_handlers(app, settings.retry_after_s)
    app.add_exception_handler(ClientLeft, _nobody_listens)
    routers = (inferq_routes, chat.router, completions.router, responses.router, score.router, files.router,
               batches.router, metrics.router)  # fmt: skip
    for router in routers:
        app.include_router(router)

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        await app.state.inferq.store.ping()
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(
        FrontDoor, keys=keys, max_body_bytes=settings.max_body_bytes, max_file_bytes=settings.max_file_bytes,
        body_timeout_s=settings.body_timeout_s,
    )  # fmt: skip
    return app


async def _nobody_listens(_: Request, __: ClientLeft) -> Response:
    # The client is gone (its job was cancelled): whatever is sent here reaches nobody.
    return Response(status_code=499)
