"""What a checkpoint is, read from its config files: shared by every engine that loads one."""

from __future__ import annotations

from typing import Any


def is_sequence_classifier(hf_config: Any) -> bool:
    """Reward models ship as `*ForSequenceClassification` checkpoints; engines serve them for scoring."""
    return any(name.endswith("ForSequenceClassification") for name in hf_config.architectures or [])


def is_vision_language_model(hf_config: Any) -> bool:
    """Image-text-to-text checkpoints (LLaVA, Idefics, Qwen2-VL...) carry a vision tower's config."""
    return getattr(hf_config, "vision_config", None) is not None


def generation_eos(model_path: str) -> int | list[int] | None:
    """The generation config's EOS ids (chat models list their end-of-turn token there)."""
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(model_path).eos_token_id
    except OSError:  # no generation_config.json
        return None
