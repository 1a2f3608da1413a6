"""`Idempotency-Key` on the gateway's POSTs: the same key from the same tenant, while the job's record is kept,
is the same job (api_client: `idempotency_key`), so a producer that retries after a timeout gets the answer of
the job its first try started instead of a second run.

Such a request is not cancelled when its client leaves: the key says the client may come back for the job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from api_client import AsyncJobHandle

HEADER = "Idempotency-Key"


def idempotency_key(request: Request) -> str | None:
    return request.headers.get(HEADER)


def on_client_leaving(request: Request, handle: AsyncJobHandle) -> Callable[[], Awaitable[None]]:
    """What to do with the job when its client leaves early: cancel it, unless a retry was announced."""
    return handle.cancel if idempotency_key(request) is None else _keep_running


async def _keep_running() -> None:
    return None
