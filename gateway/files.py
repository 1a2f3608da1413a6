"""OpenAI's Files API, for the Batch API: `POST /v1/files` (multipart, `purpose: batch`), `GET /v1/files` (the
tenant's, paginated), `GET /v1/files/{id}`, `GET /v1/files/{id}/content`, `DELETE /v1/files/{id}`. A file is
its tenant's (another tenant's is a 404); its bytes live in the gateway's file store (batch/file_store.py),
its description in Redis beside the batches.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import Response

from batch.file_store import FileStore
from gateway.access import owned_or_404, tenant_of
from gateway.batch_objects import ENDED, file_object
from gateway.errors import ApiError
from gateway.fleet import inferq_client

router = APIRouter()

# Purposes a client may upload; `batch_output` files are written by batches themselves.
UPLOAD_PURPOSES = ("batch",)


def file_store(request: Request) -> FileStore:
    return request.app.state.files


async def owned_file(request: Request, file_id: str) -> dict[str, str]:
    """The file's description, if it exists for this tenant; otherwise the 404 of a file that never was."""
    return owned_or_404(await inferq_client(request).store.batches.file(file_id), tenant_of(request), "file", file_id)


@router.post("/v1/files")
async def upload_file(request: Request, file: Annotated[UploadFile, File()], purpose: Annotated[str, Form()]):
    if purpose not in UPLOAD_PURPOSES:
        raise ApiError(400, f"must be one of {', '.join(UPLOAD_PURPOSES)}", type="invalid_request_error",
                       param="purpose", code="invalid_value")  # fmt: skip
    data = await file.read()
    file_id = f"file-{uuid.uuid4().hex}"
    await file_store(request).write(file_id, data)
    created_at = int(time.time())
    fields = {"id": file_id, "bytes": str(len(data)), "created_at": str(created_at), "purpose": purpose,
              "filename": file.filename or "upload.jsonl", "files_url": file_store(request).url}  # fmt: skip
    await inferq_client(request).store.batches.add_file(file_id, tenant_of(request).name, created_at, fields)
    return file_object(fields)


@router.get("/v1/files")
async def list_files(
    request: Request,
    purpose: str | None = None,
    after: str | None = None,
    limit: int = Query(10_000, ge=1, le=10_000),
    order: Literal["asc", "desc"] = "desc",
):
    """OpenAI's list: this tenant's files by creation time, `after` a file id (the cursor), `purpose` a filter."""
    found = await inferq_client(request).store.batches.files_of(tenant_of(request).name, newest_first=order == "desc")
    found = [fields for fields in found if purpose is None or fields["purpose"] == purpose]
    ids = [fields["id"] for fields in found]
    start = ids.index(after) + 1 if after in ids else 0
    page = [file_object(fields) for fields in found[start : start + limit]]
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": start + limit < len(found)}  # fmt: skip


@router.get("/v1/files/{file_id}")
async def retrieve_file(file_id: str, request: Request):
    return file_object(await owned_file(request, file_id))


@router.get("/v1/files/{file_id}/content")
async def file_content(file_id: str, request: Request):
    await owned_file(request, file_id)
    data = await file_store(request).read(file_id)
    if data is None:
        raise ApiError(404, f"file {file_id!r} has no content any more", type="invalid_request_error",
                       param="file_id", code="not_found")  # fmt: skip
    return Response(data, media_type="application/octet-stream")


@router.delete("/v1/files/{file_id}")
async def delete_file(file_id: str, request: Request):
    fields = await owned_file(request, file_id)
    # A batch reads its input again whenever a gateway takes it up (its refused lines too, as it ends): the
    # input of a batch that has not ended stays until the batch has written its files.
    batches = inferq_client(request).store.batches
    for batch in await batches.unretired_batches_of(fields["owner"]):
        if batch.get("input_file_id") == file_id and batch.get("status") not in ENDED:
            raise ApiError(409, f"the input of batch {batch['id']}, which has not ended yet; delete it once it has",
                           type="invalid_request_error", param="file_id", code="file_in_use")  # fmt: skip
    await inferq_client(request).store.batches.remove_file(file_id, fields["owner"])
    await file_store(request).delete(file_id)
    return {"id": file_id, "object": "file", "deleted": True}
