"""The HuggingFace transformers engine: continuous batching over transformers' own forward pass.

LLaMA-Factory's HF engine serves one request at a time (MAX_CONCURRENT=1), ignores `stop`, reports
"stop" whenever EOS appears anywhere, and cannot abort. Here, requests join a running batch between
steps (engines/hf/batch.py), stop strings and finish reasons are exact, and `abort` ends a request
within one step.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from pydantic import Field

from engines.base import BaseEngine, ChatRequest
from engines.constraints import DecodingConstraint
from engines.errors import InvalidRequest
from engines.hf.errors import translate_error
from engines.hf.grammar import Grammars
from engines.hf.loading import load
from engines.hf.scheduler import Scheduler
from engines.hf.scoring import Scorer
from engines.hf.stepper import Stepper
from engines.media import MediaPolicy
from engines.prompt import end_of_turn_ids, output_habits, prepare_tokenizer
from engines.schemas import Delta, EngineArgs, parse_engine_args

log = logging.getLogger(__name__)


class HfEngineArgs(EngineArgs):
    device: str | None = Field(None, description="cuda, cuda:1, cpu; default: cuda when visible")
    max_batch_size: int = Field(32, ge=1, description="rows decoding at once; a request with n=k takes k")
    max_prefill_tokens: int = Field(8192, ge=1, description="prompt tokens admitted in one step, padded to the longest")
    score_batch_size: int = Field(16, ge=1)


class HuggingFaceEngine(BaseEngine):
    name = "huggingface"

    def __init__(self, model: str, **engine_args: Any) -> None:
        args = parse_engine_args(HfEngineArgs, engine_args)
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        loaded = load(model, dtype=args.dtype, device=device, trust_remote_code=args.trust_remote_code)
        self.model_path = model
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.can_generate = loaded.kind in ("causal_lm", "vision_lm")
        self._processor = loaded.processor
        self.media_kinds = frozenset({"image"}) if loaded.kind == "vision_lm" else frozenset()
        self.default_params = args.default_params
        self.media_policy = MediaPolicy(remote_urls=args.media_remote_urls, local_paths=args.media_local_paths)
        text_config = loaded.config.get_text_config()
        model_context = getattr(text_config, "max_position_embeddings", None) or self.tokenizer.model_max_length
        self.context_length = min(model_context, args.max_model_len or model_context)
        # One compute thread: torch work never overlaps, and the event loop stays free for I/O.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inferq-hf-compute")
        self.stop_token_ids: tuple[int, ...] = ()
        self.capacity = args.max_batch_size if self.can_generate else args.score_batch_size
        if not self.can_generate:
            if args.adapters:
                raise InvalidRequest("adapters are served by generation models only", field="engine_args.adapters")
            self._scorer = Scorer(
                loaded.model, loaded.score_head, self.tokenizer, args.score_batch_size, self.context_length
            )
            return
        prepare_tokenizer(self.tokenizer, args.chat_template)
        self.tool_format, self.thinks = output_habits(self.tokenizer, args.tool_format, args.reasoning)
        self.stop_token_ids = end_of_turn_ids(self.tokenizer, self.model.generation_config.eos_token_id)
        # the logits' width, which a model may pad past its tokenizer's length
        self.vocab_size = self.model.get_output_embeddings().weight.shape[0]
        self._grammars = _grammars(self.tokenizer, self.vocab_size, self.stop_token_ids)
        if self._grammars is None:
            self.refused_params = frozenset({"response_format", "tool_choice"})
        for adapter_name, adapter_path in args.adapters.items():
            self.model.load_adapter(adapter_path, adapter_name=adapter_name)
        self.adapters = frozenset(args.adapters)
        self.default_adapter = args.default_adapter
        self._scheduler = Scheduler(
            Stepper(self.model, self.tokenizer, has_adapters=bool(args.adapters), grammars=self._grammars),
            self._executor,
            translate_error,
            max_batch_rows=args.max_batch_size,
            max_prefill_tokens=args.max_prefill_tokens,
        )

    def encode_images(self, prompt_text: str, images: tuple[Any, ...]) -> tuple[list[int], Any]:
        """The model's processor places the images (each image token widened to its patches) and makes the
        pixel values its prefill takes; decode steps need only the cache."""
        # As transformers' ProcessorMixin.apply_chat_template: a template that wrote the BOS (Gemma 3's,
        # Llama 3.2 Vision's) gets no second one from the tokenizer; one that did not keeps the tokenizer's.
        bos = getattr(self.tokenizer, "bos_token", None)
        wrote_bos = bool(bos) and prompt_text.startswith(bos)
        encoded = self._processor(
            text=prompt_text, images=list(images), add_special_tokens=not wrote_bos, return_tensors="pt"
        )
        prompt_ids = encoded.pop("input_ids")[0].tolist()
        encoded.pop("attention_mask", None)
        return prompt_ids, dict(encoded)

    def check_constraint(self, constraint: DecodingConstraint) -> None:
        self._grammars.compile(constraint)  # compiled once here, off the compute thread, and cached

    def generate(self, request: ChatRequest) -> AsyncIterator[Delta]:
        return self._scheduler.generate(request)

    async def abort(self, request_id: str) -> None:
        if self.can_generate:
            await self._scheduler.abort(request_id)

    async def _score(self, texts: list[str], max_length: int | None) -> list[float]:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._scorer, texts, max_length)
        except Exception as exc:
            raise translate_error(exc) from exc

    async def close(self) -> None:
        if self.can_generate:
            await self._scheduler.close()
        self._executor.shutdown(wait=True, cancel_futures=True)
        del self.model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _grammars(tokenizer: Any, vocab_size: int, stop_token_ids: tuple[int, ...]) -> Grammars | None:
    """The engine's grammar compiler; None where xgrammar is not installed (JSON output is then refused)."""
    if importlib.util.find_spec("xgrammar") is None:
        log.warning("xgrammar is not installed: response_format and forced tool_choice are refused")
        return None
    return Grammars(tokenizer, vocab_size, stop_token_ids)
