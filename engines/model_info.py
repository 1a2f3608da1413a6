"""What a checkpoint is, read from its config files: shared by every engine that loads one."""

from __future__ import annotations

from typing import Any


def is_sequence_classifier(hf_config: Any) -> bool:
    """Reward models ship as `*ForSequenceClassification` checkpoints; engines serve them for scoring."""
    return any(name.endswith("ForSequenceClassification") for name in hf_config.architectures or [])


def is_vision_language_model(hf_config: Any) -> bool:
    """Image-text-to-text checkpoints (LLaVA, Idefics, Qwen2-VL...) carry a vision tower's config. Not every
    engine serves every one: see `uses_multimodal_rope`."""
    return getattr(hf_config, "vision_config", None) is not None


def uses_multimodal_rope(hf_config: Any) -> bool:
    """Whether the model places its tokens at 3-D rotary positions (time, height, width: "mrope"), as Qwen2-VL,
    Qwen2.5-VL, Qwen3-VL and GLM-4V do. transformers computes those inside the model (`get_rope_index`) only
    when it is given no position ids, so an engine that passes its own 1-D ones (the HF engine's batching)
    would give image tokens text positions and silently worse answers. A checkpoint names its `mrope_section`
    in its rope settings (which covers remote-code models), or transformers' model class for it computes them
    (which covers checkpoints that leave the section to the class's default)."""
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    for config in (hf_config, hf_config.get_text_config()):
        for name in ("rope_parameters", "rope_scaling"):  # transformers 5's name, and remote code's
            settings = getattr(config, name, None)
            if isinstance(settings, dict) and "mrope_section" in settings:
                return True
    return hasattr(MODEL_MAPPING.get(type(hf_config), None), "get_rope_index")


def generation_eos(model_path: str) -> int | list[int] | None:
    """The generation config's EOS ids (chat models list their end-of-turn token there)."""
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(model_path).eos_token_id
    except OSError:  # no generation_config.json
        return None
