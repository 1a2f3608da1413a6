"""Constrained decoding for the HF engine: xgrammar, as vLLM and SGLang use it, per request inside the batch.

A request's constraint (JSON, or a forced tool call's schema) is compiled once (in `prepare_chat`, off the
engine's compute thread; compiled grammars are kept by schema, the most recently used few), and each of its
rows gets a matcher. Each step
the matcher says which tokens may come next; the rest are masked to -inf before the request's own
sampling, so constrained and free requests share a step. The JSON is compact (no free whitespace): a
small model would otherwise write spaces for ever.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import torch

from engines.constraints import DecodingConstraint
from engines.errors import EngineUnavailable, InvalidRequest

# Compiled grammars kept for reuse. A compiled grammar holds token masks over the whole vocabulary (up to
# megabytes for a large schema), and a worker serving many clients may see a new schema with every request:
# kept for ever, they would grow without bound. A deployment's recurring schemas fit well within this many.
MAX_COMPILED_GRAMMARS = 256


class Grammars:
    def __init__(self, tokenizer: Any, vocab_size: int, stop_token_ids: tuple[int, ...]) -> None:
        try:
            import xgrammar
        except ImportError:
            raise EngineUnavailable(
                "structured output on the HF engine needs `pip install 'inferq[hf]'` (xgrammar)", field="engine"
            ) from None
        self._xgr = xgrammar
        self.vocab_size = vocab_size
        info = xgrammar.TokenizerInfo.from_huggingface(
            tokenizer, vocab_size=vocab_size, stop_token_ids=list(stop_token_ids) or None
        )
        # xgrammar's own cache is unbounded by default; this class's is bounded, and one cache is enough.
        self._compiler = xgrammar.GrammarCompiler(info, max_threads=1, cache_enabled=False)
        self._compiled: OrderedDict[str | None, Any] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()  # prepared on one thread, used on another

    def compile(self, constraint: DecodingConstraint) -> Any:
        """The compiled grammar (cached); a schema xgrammar cannot take is a bad request, named."""
        with self._lock:
            compiled = self._compiled.get(constraint.schema_json)
            if compiled is not None:
                self._compiled.move_to_end(constraint.schema_json)
                return compiled
        try:
            if constraint.schema_json is None:
                compiled = self._compiler.compile_json_schema('{"type": "object"}', any_whitespace=False)
            else:
                compiled = self._compiler.compile_json_schema(constraint.schema_json, any_whitespace=False)
        except (RuntimeError, ValueError) as exc:
            field = "response_format" if constraint.reason == "response_format" else "tools"
            raise InvalidRequest(f"this JSON schema cannot be enforced: {exc}", field=field) from None
        with self._lock:
            self._compiled[constraint.schema_json] = compiled
            self._compiled.move_to_end(constraint.schema_json)  # assigning keeps a present key in its old place
            while len(self._compiled) > MAX_COMPILED_GRAMMARS:
                self._compiled.popitem(last=False)
        return compiled

    def matcher(self, constraint: DecodingConstraint) -> Any:
        return self._xgr.GrammarMatcher(self.compile(constraint))

    def mask(self, logits: torch.Tensor, matchers: list[Any]) -> None:
        """Masks each row of `logits` ([rows, vocab]) to what its matcher allows next."""
        bitmask = self._xgr.allocate_token_bitmask(len(matchers), self.vocab_size)
        for row, matcher in enumerate(matchers):
            matcher.fill_next_token_bitmask(bitmask, row)
        self._xgr.apply_token_bitmask_inplace(logits, bitmask.to(logits.device), vocab_size=self.vocab_size)
