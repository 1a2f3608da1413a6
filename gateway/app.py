"""The gateway's FastAPI app: one `AsyncInferQClient` per process, the OpenAI routes, and the chat page."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from api_client import AsyncInferQClient
from gateway import chat, responses, score
from gateway.auth import require_api_key
from gateway.errors import ApiError, install_error_handlers
from gateway.fleet import inferq_client, live_workers
from gateway.settings import GatewaySettings
from tasks.config import QueueSettings
from tasks.errors import JobTimeout

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"
# The page's record panel waits this long at most for the record of an answer it stopped.
MAX_RECORD_WAIT_S = 30.0

inferq_routes = APIRouter()


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
                "adapters": sorted({a for info in workers for a in info.adapters}),
                "workers": len(workers),
            },
        }
        for model, workers in sorted(by_model.items())
    ]
    return {"object": "list", "data": models}


@inferq_routes.get("/inferq/jobs/{job_id}")
async def job_record(job_id: str, request: Request, wait_s: float = Query(0, ge=0, le=MAX_RECORD_WAIT_S)):
    """A job's record (timings, tokens, worker); 202 with `status: running` while it has none."""
    handle = await inferq_client(request).find_job(job_id)
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
    return JSONResponse(record.model_dump(mode="json"))


def create_app(queue_settings: QueueSettings | None = None, settings: GatewaySettings | None = None) -> FastAPI:
    queue_settings = queue_settings or QueueSettings()
    settings = settings or GatewaySettings()
    api_keys = settings.load_api_keys()
    if not api_keys:
        log.warning("no API keys configured (INFERQ_GATEWAY_API_KEYS / _API_KEYS_FILE): the gateway is open")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async with AsyncInferQClient(settings=queue_settings) as client:
            app.state.inferq = client
            yield

    app = FastAPI(title="inferq gateway", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.api_keys = api_keys
    install_error_handlers(app)
    secured = [Depends(require_api_key)]
    for router in (inferq_routes, chat.router, responses.router, score.router):
        app.include_router(router, dependencies=secured)

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        await app.state.inferq.store.ping()
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
