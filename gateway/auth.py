"""API keys: `Authorization: Bearer <key>`, checked against the configured keys; none configured means open."""

from __future__ import annotations

import hmac

from fastapi import Request

from gateway.errors import ApiError


async def require_api_key(request: Request) -> None:
    keys: frozenset[str] = request.app.state.api_keys
    if not keys:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # compare_digest for each key: how long a comparison takes must not tell a prefix of a key.
    if scheme.lower() != "bearer" or not any(hmac.compare_digest(given.encode(), key.encode()) for key in keys):
        raise ApiError(401, "missing or unknown API key", type="authentication_error", code="invalid_api_key")
