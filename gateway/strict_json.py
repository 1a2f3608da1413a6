"""Request bodies parsed as standard JSON only.

Python's `json` accepts `NaN`, `Infinity` and `-Infinity`, which are not JSON: a `temperature: Infinity`
would reach the models as a float no engine can use, and in a free-form field (a tool's schema) it would
travel on to the workers. Here those constants are refused wherever they appear, naming where, and a
document nested deeper than Python can parse is a 400 that says so. Every route is a `StrictJsonRoute`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from gateway.errors import ApiError


class _NonFinite:
    def __init__(self, constant: str) -> None:
        self.constant = constant


def parse_json(body: bytes) -> Any:
    seen: list[_NonFinite] = []

    def non_finite(constant: str) -> _NonFinite:
        seen.append(marker := _NonFinite(constant))
        return marker

    try:
        parsed = json.loads(body, parse_constant=non_finite)
    except RecursionError:
        raise ApiError(400, "the JSON body is nested too deeply", type="invalid_request_error") from None
    if seen:
        path = _path_of(parsed, seen[0]) or []
        raise ApiError(
            400,
            f"{seen[0].constant} is not a JSON number: numbers must be finite",
            type="invalid_request_error",
            param=".".join(map(str, path)) or None,
        )
    return parsed


def _path_of(value: Any, target: _NonFinite) -> list[str | int] | None:
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        current, path = stack.pop()
        if current is target:
            return path
        if isinstance(current, dict):
            stack += [(item, [*path, key]) for key, item in current.items()]
        elif isinstance(current, list):
            stack += [(item, [*path, index]) for index, item in enumerate(current)]
    return None


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict_handler
