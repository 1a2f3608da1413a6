"""The GPU run's model (benchmarks/shaped_model.py): its shapes, and a tiny one built and answering through the
HF engine as the GPU run's 8B one would."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from benchmarks.shaped_model import build_shaped_model, shaped_config
from engines.default_model import ensure_smollm2
from engines.registry import load_engine


def test_the_8b_shape_has_llama_3_8b_layers_on_smollm2s_vocabulary():
    tokenizer = AutoTokenizer.from_pretrained(ensure_smollm2())
    config = shaped_config("llama-3-8b", tokenizer)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    parameters = sum(p.numel() for p in model.parameters())
    # Llama-3-8B's 8.03B, less 2 x 4096 x (128,256 - 49,152) of embedding and head
    assert parameters == 8_030_261_248 - 2 * 4096 * (128_256 - 49_152)
    assert (config.num_hidden_layers, config.num_key_value_heads, config.vocab_size) == (32, 8, 49_152)


def test_an_unknown_shape_is_refused_by_name():
    with pytest.raises(ValueError, match="shape: unknown 'llama-9'"):
        shaped_config("llama-9", AutoTokenizer.from_pretrained(ensure_smollm2()))


async def test_a_tiny_shaped_model_answers_through_the_hf_engine(tmp_path):
    build_shaped_model("tiny", ensure_smollm2(), tmp_path / "tiny", dtype="float32", device="cpu")
    engine = load_engine("huggingface", str(tmp_path / "tiny"), device="cpu")
    try:
        answer = await engine.chat([{"role": "user", "content": "Hi"}], max_new_tokens=8, temperature=0)
    finally:
        await engine.close()
    # random weights: noise, but the whole length (they seldom pick the end-of-turn token)
    assert answer[0].response_length == 8
    assert answer[0].prompt_length > 1
