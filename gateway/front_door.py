"""The gateway's front door, in plain ASGI: nothing is parsed for a caller who has not shown a key, and no
body is held that is larger than allowed.

FastAPI checks a dependency only after it has read and parsed the body, so a keyless client could make
the gateway buffer and parse any amount of JSON before its 401. Here, before the app sees a request:
1. the key is checked from the headers alone (401, connection closed, body never read);
2. a declared `Content-Length` over the cap is refused at once (413), and a body without one is counted
   as it streams in and refused the moment it passes the cap: at most the cap is ever buffered (the paths
   open without a key, the page and /health, take no body at all);
3. the body must arrive within `body_timeout_s` (408), so a slow sender cannot hold the request open;
then the app gets the body from memory, and the caller's tenant in `request.state.tenant`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.tenants import KeyTable

# Served to anyone: the chat page (it asks its user for a key) and the health check of a load balancer.
PUBLIC_PATHS = frozenset({"/", "/health"})
PUBLIC_PREFIXES = ("/static/",)
# A Batch API input file is larger than any request: its own cap (INFERQ_GATEWAY_MAX_FILE_BYTES).
UPLOAD_PATH = "/v1/files"


class FrontDoor:
    def __init__(
        self, app: ASGIApp, keys: KeyTable, *, max_body_bytes: int, max_file_bytes: int, body_timeout_s: float
    ) -> None:
        self.app = app
        self._keys = keys
        self._max_body_bytes = max_body_bytes
        self._max_file_bytes = max_file_bytes
        self._body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        path = scope["path"]
        public = path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)
        if not public:
            tenant = self._keys.tenant_of(headers.get("authorization", ""))
            if tenant is None:
                await _refuse(send, 401, "missing or unknown API key", "authentication_error", "invalid_api_key")
                return
            scope.setdefault("state", {})["tenant"] = tenant
        # the page, its files and /health take no body: nothing is read for a caller without a key
        cap = 0 if public else self._max_file_bytes if path == UPLOAD_PATH else self._max_body_bytes
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > cap):
            await self._too_large(send, cap)
            return
        try:
            async with asyncio.timeout(self._body_timeout_s):
                body = await self._read_body(receive, cap)
        except TimeoutError:
            message = f"the body did not arrive within {self._body_timeout_s:g} s"
            await _refuse(send, 408, message, "invalid_request_error", "request_timeout")
            return
        if body is None:
            await self._too_large(send, cap)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, receive: Receive, cap: int) -> bytes | None:
        """The whole body, or None once it passes the cap (the rest is never read)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"".join(chunks)  # the app hears of the disconnect when it asks
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > cap:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _too_large(self, send: Send, cap: int) -> None:
        if cap == 0:
            message = "this path takes no request body"
        else:
            setting = "MAX_FILE_BYTES" if cap == self._max_file_bytes else "MAX_BODY_BYTES"
            message = f"the request body is larger than {cap} bytes (INFERQ_GATEWAY_{setting})"
        await _refuse(send, 413, message, "invalid_request_error", "request_too_large")


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body from memory first, then whatever the client sends next (its disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _refuse(send: Send, status: int, message: str, kind: str, code: str) -> None:
    payload: dict[str, Any] = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    body = json.dumps(payload).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        # the client may still be sending: close rather than read the rest of its body
        (b"connection", b"close"),
    ]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
