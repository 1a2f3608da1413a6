"""LLaMA-Factory's inference YAML (`llamafactory-cli chat/api infer.yaml`) as a worker's options.

What inferq can honour is mapped: the model, one adapter (applied to every request that names none, as
LLaMA-Factory applies it), the backend, the dtype, trust_remote_code, the vllm_* arguments and the
generation defaults. What it cannot is refused by name before anything loads, never ignored: `template`
(inferq renders prompts with the checkpoint's own chat template), a second adapter, beam search, a default
system prompt, sglang_*/kt_* arguments (given as --engine-args instead), and any key it does not know.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from engines.errors import InvalidRequest
from engines.schemas import GenerationParams, invalid_from_validation

BACKENDS = {"huggingface": "huggingface", "hf": "huggingface", "vllm": "vllm", "sglang": "sglang",
            "ktransformers": "ktransformers"}  # fmt: skip
ENGINE_ARGS = {"infer_dtype": "dtype", "trust_remote_code": "trust_remote_code"}
VLLM_ARGS = {"vllm_maxlen": "max_model_len", "vllm_gpu_util": "gpu_memory_utilization",
             "vllm_enforce_eager": "enforce_eager", "vllm_max_lora_rank": "max_lora_rank"}  # fmt: skip
GENERATION = ("do_sample", "temperature", "top_p", "top_k", "max_new_tokens", "max_length", "repetition_penalty",
              "skip_special_tokens")  # fmt: skip
WHY_NOT = {
    "template": "inferq renders prompts with the checkpoint's own chat template (llamafactory-cli export writes "
    "yours into it) or engine_args.chat_template; LLaMA-Factory's named templates are not reproduced: remove "
    "this line once the checkpoint carries the template it was trained with",
    "default_system": "inferq has no default system prompt: producers send `system` with each request",
    "num_beams": "inferq's engines sample or decode greedily; beam search is not served",
    "length_penalty": "only affects beam search, which inferq's engines do not run; leave it at 1.0",
}


def worker_options(path: str | Path) -> dict[str, Any]:
    """`worker_settings` keyword arguments (engine, model, engine_args) from a LLaMA-Factory YAML."""
    try:
        config = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as error:
        raise InvalidRequest(f"not YAML ({str(error).splitlines()[0]})", field="config") from None
    if not isinstance(config, dict):
        raise InvalidRequest("must be a YAML mapping of LLaMA-Factory's arguments", field="config")
    config = dict(config)
    if not isinstance(config.get("model_name_or_path"), str):
        raise InvalidRequest("is required: the checkpoint to serve", field="model_name_or_path")
    options: dict[str, Any] = {"model": config.pop("model_name_or_path")}
    engine_args: dict[str, Any] = {}
    backend = config.pop("infer_backend", "huggingface")
    if backend not in BACKENDS:
        raise InvalidRequest(f"must be one of {', '.join(BACKENDS)}", field="infer_backend")
    options["engine"] = BACKENDS[backend]
    finetuning = config.pop("finetuning_type", "lora")
    if finetuning not in ("lora", "full", "freeze"):
        raise InvalidRequest("must be lora, full or freeze", field="finetuning_type")
    if (adapter := config.pop("adapter_name_or_path", None)) is not None:
        if finetuning != "lora":  # LLaMA-Factory refuses it too
            raise InvalidRequest("an adapter is only valid with finetuning_type: lora", field="adapter_name_or_path")
        engine_args.update(_adapter(adapter))
    if config.pop("enable_thinking", True) is not True:
        reason = "inferq leaves thinking to the chat template; it cannot turn it off"
        raise InvalidRequest(reason, field="enable_thinking")
    for neutral in ("num_beams", "length_penalty"):
        if config.get(neutral, 1) == 1:
            config.pop(neutral, None)
    # As LLaMA-Factory's GeneratingArguments.to_dict: a positive max_new_tokens (its default, 1024, too) wins
    # and max_length is dropped; max_new_tokens <= 0 means "use max_length".
    new_tokens = config.get("max_new_tokens", 1024)
    if isinstance(new_tokens, int) and not isinstance(new_tokens, bool) and new_tokens <= 0:
        config.pop("max_new_tokens")
        config.setdefault("max_length", 1024)  # LLaMA-Factory's default, prompt and answer together
    else:
        config.pop("max_length", None)
    for key, arg in ENGINE_ARGS.items():
        if key in config:
            engine_args[arg] = config.pop(key)
    engine_args.update(_vllm_args(config, options["engine"]))
    defaults = {name: config.pop(name) for name in GENERATION if name in config}
    if defaults:
        try:
            GenerationParams.model_validate(defaults)
        except ValidationError as exc:
            raise invalid_from_validation(exc) from None
        engine_args["default_params"] = defaults
    for key in sorted(config):
        reason = WHY_NOT.get(key)
        if reason is None and key.startswith(("sglang_", "kt_")):
            reason = "not read from a LLaMA-Factory config: give the engine's arguments in --engine-args"
        raise InvalidRequest(reason or "inferq cannot honour this argument (or does not know it)", field=key)
    options["engine_args"] = engine_args
    return options


def _adapter(value: Any) -> dict[str, Any]:
    paths = [part.strip() for part in value.split(",")] if isinstance(value, str) else None
    if not paths or not all(paths):
        raise InvalidRequest("must be a path to a LoRA adapter", field="adapter_name_or_path")
    if len(paths) > 1:
        raise InvalidRequest(
            "inferq applies one adapter per request; merge these (llamafactory-cli export) and serve the merge",
            field="adapter_name_or_path",
        )
    name = Path(paths[0]).name or "adapter"
    return {"adapters": {name: paths[0]}, "default_adapter": name}


def _vllm_args(config: dict[str, Any], engine: str) -> dict[str, Any]:
    given = [key for key in (*VLLM_ARGS, "vllm_config") if key in config]
    if given and engine != "vllm":
        raise InvalidRequest("only with infer_backend: vllm", field=given[0])
    args = {VLLM_ARGS[key]: config.pop(key) for key in given if key in VLLM_ARGS}
    if engine == "vllm":  # LLaMA-Factory's own defaults (VllmArguments), which it always passes to vLLM
        args.setdefault("max_model_len", 4096)
        args.setdefault("gpu_memory_utilization", 0.7)
        args.setdefault("max_lora_rank", 32)
    if "vllm_config" in config:
        extra = config.pop("vllm_config")
        try:
            args["vllm_config"] = json.loads(extra) if isinstance(extra, str) else extra
        except ValueError:
            raise InvalidRequest("must be a mapping or its JSON", field="vllm_config") from None
    return args
