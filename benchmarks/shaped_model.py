"""A model with a real model's shape and random weights, for timing the queue on a GPU that cannot download
a checkpoint (issue 20's GPU runs: `benchmarks/gpu_run.sh`).

What a step costs depends on the layers' shapes, not on the weights' values, so an 8B-shaped Llama with
random weights times like Llama-3-8B. The tokenizer and chat format are SmolLM2's (carried to the GPU as
files): the vocabulary is SmolLM2's 49,152 tokens instead of Llama-3's 128,256, which takes 0.65B
parameters out of the embedding and the head (7.4B left; the 32 layers unchanged). Random weights seldom
pick the end-of-turn token (1 in 49,152 a step), so answers run to their token limit, as `ignore_eos` would.

    python -m benchmarks.shaped_model OUT --shape llama-3-8b --tokenizer DIR [--device cuda]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

# Llama-3-8B's config.json, less its vocabulary; `tiny` is the same code path in seconds on a CPU.
SHAPES: dict[str, dict[str, Any]] = {
    "llama-3-8b": {
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 8192,
        "rope_theta": 500000.0,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
    },
    "tiny": {  # heads of 64, as SmolLM2's: vLLM's CPU attention has kernels for few head sizes
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 2048,
        "tie_word_embeddings": True,
    },
}


def shaped_config(shape: str, tokenizer):
    """A LlamaConfig of `shape` over `tokenizer`'s vocabulary and special tokens."""
    from transformers import LlamaConfig

    if shape not in SHAPES:
        raise ValueError(f"shape: unknown {shape!r}; choose from {', '.join(SHAPES)}")
    return LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **SHAPES[shape],
    )


def build_shaped_model(shape: str, tokenizer_dir: str, target: Path, dtype: str, device: str, seed: int = 0) -> None:
    """Saves a Llama of `shape` with random weights (drawn on `device`: 8B on a CPU takes minutes) and
    `tokenizer_dir`'s tokenizer to `target`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = shaped_config(shape, tokenizer)
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", type=Path)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="llama-3-8b")
    parser.add_argument("--tokenizer", required=True, help="a folder holding a tokenizer and its chat template")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    build_shaped_model(args.shape, args.tokenizer, args.target, args.dtype, args.device)
    print(args.target)


if __name__ == "__main__":
    main()
