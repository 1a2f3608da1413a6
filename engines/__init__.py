"""Inference engines behind one contract. Importing this package imports no backend and no torch."""

from engines.base import BaseEngine, ChatRequest, ResponseBuilder
from engines.errors import EngineDead, EngineError, EngineOverloaded, EngineUnavailable, InferqError, InvalidRequest
from engines.registry import ENGINES, load_engine
from engines.schemas import Delta, GenerationParams, Message, Response

__all__ = [
    "ENGINES",
    "BaseEngine",
    "ChatRequest",
    "Delta",
    "EngineDead",
    "EngineError",
    "EngineOverloaded",
    "EngineUnavailable",
    "GenerationParams",
    "InferqError",
    "InvalidRequest",
    "Message",
    "Response",
    "ResponseBuilder",
    "load_engine",
]
