"""torch's errors in inferq's tree, at the HF engine's edge (httpx's map_httpcore_exceptions idea)."""

from __future__ import annotations

import torch

from engines.errors import EngineDead, EngineError, EngineOverloaded


def translate_error(exc: BaseException) -> EngineError:
    """Out of memory is recoverable, a CUDA fault is not; anything else fails what it happened to."""
    if isinstance(exc, EngineError):
        return exc
    if isinstance(exc, torch.OutOfMemoryError):
        return EngineOverloaded(f"out of memory: {exc}")
    message = str(exc)
    if isinstance(exc, RuntimeError) and ("CUDA error" in message or "device-side assert" in message):
        return EngineDead(f"the GPU faulted: {message}")
    return EngineError(f"{type(exc).__name__}: {message}")


def request_failure(exc: Exception) -> EngineError:
    """What ends a request whose own work failed inside a step; a device fault is raised instead, since
    no request can go on after it."""
    error = translate_error(exc)
    if isinstance(error, EngineDead):
        raise error from exc
    return error
