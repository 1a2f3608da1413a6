"""Models the tests build themselves: tiny random-weight ones for speed, SmolLM2-based ones for realism.

Every builder uses SmolLM2's tokenizer and chat template, so prompts look like the real thing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from engines import default_model

TINY_CONFIG = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    head_dim=64,
    max_position_embeddings=2048,
    tie_word_embeddings=True,
)


def _tiny_config(tokenizer) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **TINY_CONFIG,
    )


def build_tiny_llama(folder: Path, tokenizer_dir: str, seed: int = 0) -> Path:
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(_tiny_config(tokenizer))
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_classifier(folder: Path, base_dir: str, seed: int = 0) -> Path:
    """A one-label sequence classifier: `base_dir`'s weights with a random score head."""
    default_model.build_classifier(base_dir, folder, seed)
    return folder


def build_value_head_model(folder: Path, base_dir: str, seed: int = 0) -> Path:
    """A base model plus a trl/LLaMA-Factory value head file, as LLaMA-Factory saves reward models."""
    shutil.copytree(base_dir, folder)
    torch.manual_seed(seed)
    hidden = LlamaConfig.from_pretrained(base_dir).hidden_size
    save_file(
        {"v_head.summary.weight": torch.randn(1, hidden) * 0.5, "v_head.summary.bias": torch.tensor([0.25])},
        folder / "value_head.safetensors",
    )
    return folder


def build_lora_adapter(folder: Path, base_dir: str, seed: int = 0) -> Path:
    """A random LoRA on q/v projections, strong enough to change SmolLM2's greedy answer, not to break it."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    torch.manual_seed(seed)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(folder)
    return folder
