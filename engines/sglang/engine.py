"""The SGLang engine, in process, on SGLang's own `Engine` (no HTTP server). Written against SGLang 0.5.23.

LLaMA-Factory's SGLang engine runs a server subprocess, blocks its event loop on a synchronous HTTP
read, drops images, refuses n > 1 and reports "length" for every answer. Here every call is awaited
on the worker's one event loop (`async_generate`, the tokenizer manager's `generate_request`; never
SGLang's sync helpers, which run a loop of their own), and all of those work.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import Field
from transformers import AutoConfig, AutoTokenizer

from engines.base import BaseEngine, ChatRequest
from engines.errors import EngineError, InvalidRequest
from engines.media import MediaPolicy
from engines.model_info import generation_eos, is_sequence_classifier, is_vision_language_model
from engines.prompt import end_of_turn_ids, output_habits, prepare_tokenizer
from engines.schemas import Delta, EngineArgs, parse_engine_args
from engines.sglang.containment import contained_launch, kept_event_loop_policy, stop_processes
from engines.sglang.translate import (
    SequenceStream,
    StreamMode,
    check_overrides,
    sampling_params,
    server_arg_names,
    token_logprobs,
)

log = logging.getLogger(__name__)


class SGLangEngineArgs(EngineArgs):
    tp_size: int | None = Field(None, ge=1, description="default: every GPU the worker is pinned to")
    mem_fraction_static: float | None = Field(None, gt=0, lt=1)
    max_loras_per_batch: int = Field(8, ge=1)
    max_lora_rank: int | None = Field(None, ge=1)
    max_running_requests: int = Field(
        256, ge=1, description="requests decoding at once; SGLang lowers it further when the KV cache is smaller"
    )
    sglang_config: dict[str, Any] = Field(default_factory=dict, description="any further ServerArgs field")


def server_args(model: str, args: SGLangEngineArgs, hf_config: Any, num_gpus: int) -> dict[str, Any]:
    """`sglang.Engine(**kwargs)` for `model` (pure, so it is tested without SGLang)."""
    kwargs: dict[str, Any] = {
        "model_path": model,
        "tp_size": args.tp_size or max(num_gpus, 1),
        "dtype": args.dtype,
        "trust_remote_code": args.trust_remote_code,
        # reward / sequence-classification models are served through SGLang's embedding path
        "is_embedding": is_sequence_classifier(hf_config),
        # set, not left to SGLang's memory-based default, so that the worker knows what it may admit
        "max_running_requests": args.max_running_requests,
    }
    if args.max_model_len is not None:
        kwargs["context_length"] = args.max_model_len
    if args.mem_fraction_static is not None:
        kwargs["mem_fraction_static"] = args.mem_fraction_static
    if args.adapters:
        # requests name an adapter by its name (`lora_path=<name>`); SGLang maps names to paths
        kwargs.update(enable_lora=True, lora_paths=dict(args.adapters), max_loras_per_batch=args.max_loras_per_batch)
        if args.max_lora_rank is not None:
            kwargs["max_lora_rank"] = args.max_lora_rank
    return kwargs


@dataclass
class _Running:
    rids: set[str]  # the request's own id and, once seen, each of its n children's (SGLang renames them)
    aborting: bool = field(default=False)


class SGLangEngine(BaseEngine):
    name = "sglang"
    args_model: ClassVar[type[SGLangEngineArgs]] = SGLangEngineArgs
    overrides_field: ClassVar[str] = "sglang_config"

    def __init__(self, model: str, **engine_args: Any) -> None:
        args = parse_engine_args(self.args_model, engine_args)
        self.check_backend()
        with kept_event_loop_policy():  # importing SGLang's engine module installs uvloop globally
            # `sglang.Engine` is a lazy import of this module: import it here, inside the guard
            engine_module = importlib.import_module("sglang.srt.entrypoints.engine")
            server_args_module = importlib.import_module("sglang.srt.server_args")
            self._io_struct = importlib.import_module("sglang.srt.managers.io_struct")
        import torch

        hf_config = AutoConfig.from_pretrained(model, trust_remote_code=args.trust_remote_code)
        kwargs = self.server_args(model, args, hf_config, torch.cuda.device_count())
        known_args = server_arg_names(server_args_module.ServerArgs)
        if {"enable_priority_scheduling", "schedule_low_priority_values_first"} <= known_args:
            # Requests carry their job's queue priority, lower first as inferq's (SGLang runs higher values first
            # unless told): a chat is scheduled before a batch's rows, as on the HF and vLLM engines.
            kwargs.update(enable_priority_scheduling=True, schedule_low_priority_values_first=True)
        check_overrides(getattr(args, self.overrides_field), known_args, self.overrides_field)
        kwargs.update(getattr(args, self.overrides_field))
        log.info("starting %s engine: %s", self.name, kwargs)
        # The contract's logprobs are the model's own (engines/logprobs.py); SGLang's sampler returns them after
        # temperature unless told. Its scheduler process inherits this.
        os.environ.setdefault("SGLANG_RETURN_ORIGINAL_LOGPROB", "1")
        with contained_launch() as launched:
            self._engine = engine_module.Engine(**kwargs)
        # Its shutdown kills every child of this process; close() stops only SGLang's own.
        atexit.unregister(self._engine.shutdown)
        self._own_pids = launched.pids
        self.model_path = model
        self.can_generate = not kwargs["is_embedding"]
        self.default_params = args.default_params
        self.media_policy = MediaPolicy(remote_urls=args.media_remote_urls, local_paths=args.media_local_paths)
        self.tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=args.trust_remote_code)
        self.stop_token_ids = ()
        if self.can_generate:
            prepare_tokenizer(self.tokenizer, args.chat_template)
            self.stop_token_ids = end_of_turn_ids(self.tokenizer, generation_eos(model))
            self.tool_format, self.thinks = output_habits(self.tokenizer, args.tool_format, args.reasoning)
        self.context_length = self._engine.tokenizer_manager.context_len
        self.vocab_size = getattr(hf_config.get_text_config(), "vocab_size", None)
        self.capacity = self._engine.server_args.max_running_requests  # sglang_config may have overridden it
        self.media_kinds = frozenset({"image"}) if is_vision_language_model(hf_config) else frozenset()
        self.adapters = frozenset(args.adapters)
        self.default_adapter = args.default_adapter
        self._mode = StreamMode.of(self._engine.server_args)
        self._seeds_honoured = bool(getattr(self._engine.server_args, "enable_deterministic_inference", False))
        # What the engine runs with, `sglang_config` included (a fork without priority scheduling gets none):
        # None, or the sign that makes inferq's "lower first" SGLang's order.
        by_priority = getattr(self._engine.server_args, "enable_priority_scheduling", False)
        low_first = getattr(self._engine.server_args, "schedule_low_priority_values_first", False)
        self._priority_sign = (1 if low_first else -1) if by_priority else None
        self._running: dict[str, _Running] = {}

    def check_backend(self) -> None:
        """Fails before anything loads when the installed SGLang cannot serve (overridden by KTransformers)."""

    def server_args(self, model: str, args: SGLangEngineArgs, hf_config: Any, num_gpus: int) -> dict[str, Any]:
        return server_args(model, args, hf_config, num_gpus)

    async def generate(self, request: ChatRequest) -> AsyncIterator[Delta]:
        params = sampling_params(request.params, seeds_honoured=self._seeds_honoured)
        # With images SGLang needs the templated text to place them; otherwise ids avoid a second BOS.
        inputs = (
            {"prompt": request.prompt_text, "image_data": list(request.images)}
            if request.images
            else {"input_ids": request.prompt_ids}
        )
        running = self._running[request.request_id] = _Running({request.request_id})
        sequences = [SequenceStream(self._mode, request.params.stop) for _ in range(request.params.n)]
        unfinished = set(range(request.params.n))
        top = request.params.logprobs
        logprobs_seen = [0] * request.params.n
        asked = {} if top is None else {"return_logprob": True, "top_logprobs_num": top}
        if self._priority_sign is not None:
            asked["priority"] = self._priority_sign * request.priority
        try:
            chunks = await self._translated(
                self._engine.async_generate(
                    **inputs, sampling_params=params, lora_path=request.adapter, stream=True, rid=request.request_id,
                    **asked,
                )
            )  # fmt: skip
            async with aclosing(chunks):
                while unfinished and not running.aborting:
                    chunk = await self._translated(anext(chunks, None))
                    if chunk is None:
                        break
                    running.rids.add(chunk["meta_info"]["id"])
                    index = chunk.get("index", 0)
                    if index not in unfinished:
                        continue  # our stop-string matcher ended it before SGLang did
                    text, token_ids, reason = sequences[index].feed(chunk)
                    logprobs: tuple = ()
                    if top is not None:
                        seen = 0 if self._mode.text_is_delta else logprobs_seen[index]
                        logprobs, logprobs_seen[index] = token_logprobs(chunk["meta_info"], seen, top)
                    if reason is not None:
                        unfinished.discard(index)
                    yield Delta(index, text, token_ids, reason, logprobs)
            for index in sorted(unfinished):
                yield Delta(index, "", (), "abort")
        finally:
            # Answers SGLang did not end (the consumer went away, or an abort came before every child of an
            # n > 1 request had a rid we know): the sglang-kt fork does not abort by itself, so every rid seen
            # by now is aborted again.
            if unfinished:
                self._abort_rids(running.rids)
            del self._running[request.request_id]

    async def abort(self, request_id: str) -> None:
        running = self._running.get(request_id)
        if running is not None:
            running.aborting = True
            self._abort_rids(running.rids)

    def _abort_rids(self, rids: set[str]) -> None:
        # The tokenizer manager drops an abort for a rid it no longer tracks (an n > 1 parent, a
        # finished child), so each known rid is aborted on its own. Called on the engine loop: the
        # abort goes out on a zmq socket, which is not thread-safe.
        for rid in rids:
            self._engine.tokenizer_manager.abort_request(rid=rid)

    async def _score(self, texts: list[str], max_length: int | None) -> list[float]:
        limit = min(max_length or self.context_length, self.context_length)
        token_ids = [self.tokenizer(text, add_special_tokens=False)["input_ids"][:limit] for text in texts]
        return list(await asyncio.gather(*[self._classify(ids) for ids in token_ids]))

    async def _classify(self, token_ids: list[int]) -> float:
        # async_encode takes only text; the request object takes token ids (no BOS added, as in HF).
        request = self._io_struct.EmbeddingReqInput(input_ids=token_ids)
        output = await self._translated(anext(self._engine.tokenizer_manager.generate_request(request, None)))
        return float(output["embedding"][0])

    async def close(self) -> None:
        manager = self._engine.tokenizer_manager
        watchdog = getattr(manager, "_subprocess_watchdog", None)
        if watchdog is not None:
            watchdog.stop()  # it would SIGQUIT this process when it sees SGLang's processes go
        for task in list(getattr(manager, "asyncio_tasks", ())):
            task.cancel()
        await asyncio.to_thread(stop_processes, self._own_pids)

    @staticmethod
    async def _translated(awaitable):
        """SGLang's errors into inferq's tree, at the edge."""
        try:
            return await awaitable
        except (EngineError, InvalidRequest):
            raise
        except ValueError as exc:  # SGLang's request validation (bad sampling params, unknown adapter...)
            raise InvalidRequest(f"SGLang refused the request: {exc}") from exc
        except Exception as exc:
            raise EngineError(f"{type(exc).__name__}: {exc}") from exc
