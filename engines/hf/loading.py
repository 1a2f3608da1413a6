"""Loads a checkpoint for the HF engine: a causal LM, a sequence classifier, or a backbone with a value head."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoModelForSequenceClassification,
    AutoProcessor,
    AutoTokenizer,
)

from engines.errors import EngineError
from engines.model_info import is_sequence_classifier, is_vision_language_model, uses_multimodal_rope

log = logging.getLogger(__name__)

ModelKind = Literal["causal_lm", "vision_lm", "classifier", "value_head"]

# LLaMA-Factory (trl) saves a reward model as the base model plus one of these.
VALUE_HEAD_FILES = ("value_head.safetensors", "value_head.bin")


@dataclass
class LoadedModel:
    kind: ModelKind
    model: Any  # the whole model for causal_lm; the backbone for the scoring kinds
    tokenizer: Any
    config: Any
    score_head: torch.nn.Module | None  # hidden state -> one score, for the scoring kinds
    processor: Any = None  # a vision model's: images (and the prompt that places them) to model inputs


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype | str:
    if dtype != "auto":
        return getattr(torch, dtype)
    # bf16 matmuls on AVX2-only CPUs are several times slower than fp32, and fp32 matches plain
    # transformers exactly; a GPU runs what the checkpoint was saved in.
    return torch.float32 if device.type == "cpu" else "auto"


def load(model_path: str, *, dtype: str, device: torch.device, trust_remote_code: bool) -> LoadedModel:
    config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    if uses_multimodal_rope(config):
        raise EngineError(
            f"{config.model_type} places tokens at 3-D rotary positions (mrope), which the HF engine's batching "
            "does not compute (image tokens would get text positions); serve it with the vLLM engine "
            "(--engine vllm)",
            field="model",
        )
    tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    common = {"dtype": resolve_dtype(dtype, device), "trust_remote_code": trust_remote_code}
    # Several visible GPUs: let accelerate spread the layers; one device: place the model whole.
    placement = {"device_map": "auto"} if device.type == "cuda" and torch.cuda.device_count() > 1 else {}
    value_head = _value_head_file(model_path)
    processor = None
    if is_sequence_classifier(config):
        classifier = AutoModelForSequenceClassification.from_pretrained(model_path, **common, **placement)
        if classifier.config.num_labels != 1:
            raise EngineError(
                f"a reward model needs one score; this classifier has num_labels={classifier.config.num_labels}",
                field="model",
            )
        kind, model, head = "classifier", getattr(classifier, classifier.base_model_prefix), classifier.score
    elif value_head is not None:
        model = AutoModel.from_pretrained(model_path, **common, **placement)
        kind, head = "value_head", _load_value_head(value_head, config)
    elif is_vision_language_model(config):
        kind, head = "vision_lm", None
        model = AutoModelForImageTextToText.from_pretrained(model_path, **common, **placement)
        processor = AutoProcessor.from_pretrained(model_path, trust_remote_code=trust_remote_code)
        tokenizer = processor.tokenizer
    else:
        kind, head = "causal_lm", None
        model = AutoModelForCausalLM.from_pretrained(model_path, **common, **placement)
    if not placement:
        model = model.to(device)
    if head is not None:
        head = head.to(device=model.device, dtype=model.dtype)
    model.eval()
    return LoadedModel(kind=kind, model=model, tokenizer=tokenizer, config=config, score_head=head, processor=processor)


def _value_head_file(model_path: str) -> Path | None:
    folder = Path(model_path)
    return next((folder / name for name in VALUE_HEAD_FILES if (folder / name).is_file()), None)


def _load_value_head(path: Path, config: Any) -> torch.nn.Linear:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    weight, bias = state["v_head.summary.weight"], state.get("v_head.summary.bias")
    head = torch.nn.Linear(config.get_text_config().hidden_size, 1, bias=bias is not None)
    head.load_state_dict({"weight": weight, **({"bias": bias} if bias is not None else {})})
    log.info("value head loaded from %s", path.name)
    return head
