"""Reward scoring: sequence-classification heads and value heads, checked against direct forward passes."""

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from engines import load_engine
from engines.errors import InvalidRequest

TEXTS = [
    "Paris is the capital of France.",
    "The capital of France is London, which is in England and not in France at all.",
    "ok",
    "A much longer answer that rambles on for a while, to make sure the batch needs plenty of padding.",
]


def _direct_classifier_scores(model_dir, texts, max_length=None):
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    scores = []
    for text in texts:  # one text at a time: no padding at all
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_length]
        with torch.no_grad():
            scores.append(model(torch.tensor([ids])).logits[0, 0].item())
    return scores


async def test_classifier_scores_equal_a_direct_forward(tiny_scoring_engine, tiny_classifier_dir):
    assert not tiny_scoring_engine.can_generate
    scores = await tiny_scoring_engine.get_scores(TEXTS)
    assert scores == pytest.approx(_direct_classifier_scores(tiny_classifier_dir, TEXTS), abs=1e-4)


async def test_batching_and_padding_do_not_change_a_score(tiny_scoring_engine):
    alone = [(await tiny_scoring_engine.get_scores([text]))[0] for text in TEXTS]
    together = await tiny_scoring_engine.get_scores(TEXTS * 3)  # three micro-batches of 4, mixed lengths
    assert together == pytest.approx(alone * 3, abs=1e-4)


async def test_texts_are_truncated_to_max_length(tiny_scoring_engine, tiny_classifier_dir):
    [score] = await tiny_scoring_engine.get_scores([TEXTS[1]], max_length=5)
    assert score == pytest.approx(_direct_classifier_scores(tiny_classifier_dir, [TEXTS[1]], 5)[0], abs=1e-4)


async def test_a_text_ending_in_the_pad_token_is_scored_at_its_real_end(tiny_scoring_engine, tiny_classifier_dir):
    # SmolLM2 pads with <|im_end|>, which also ends every templated turn.
    text = "<|im_start|>assistant\nParis<|im_end|>"
    tokenizer = AutoTokenizer.from_pretrained(tiny_classifier_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier_dir, dtype=torch.float32)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids[-1] == tokenizer.pad_token_id
    with torch.no_grad():
        hidden = model.model(torch.tensor([ids])).last_hidden_state[0, -1]
        expected = model.score(hidden)[0].item()
    assert (await tiny_scoring_engine.get_scores([text]))[0] == pytest.approx(expected, abs=1e-4)


async def test_value_head_scores_equal_a_direct_forward(tiny_value_head_dir):
    engine = load_engine("huggingface", tiny_value_head_dir)
    try:
        assert not engine.can_generate
        scores = await engine.get_scores(TEXTS)
    finally:
        await engine.close()
    backbone = AutoModel.from_pretrained(tiny_value_head_dir, dtype=torch.float32)
    head = load_file(f"{tiny_value_head_dir}/value_head.safetensors")
    tokenizer = AutoTokenizer.from_pretrained(tiny_value_head_dir)
    expected = []
    for text in TEXTS:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            last = backbone(torch.tensor([ids])).last_hidden_state[0, -1]
        expected.append((last @ head["v_head.summary.weight"][0] + head["v_head.summary.bias"][0]).item())
    assert scores == pytest.approx(expected, abs=1e-4)


async def test_smollm2_classifier_scores_equal_a_direct_forward(smollm2_classifier_dir):
    engine = load_engine("huggingface", smollm2_classifier_dir)
    try:
        scores = await engine.get_scores(TEXTS)
    finally:
        await engine.close()
    assert scores == pytest.approx(_direct_classifier_scores(smollm2_classifier_dir, TEXTS), abs=1e-3)


@pytest.mark.parametrize(
    ("batch_input", "params", "field"),
    [
        ([], {}, "batch_input"),
        ("just a string", {}, "batch_input"),
        (["ok", 3], {}, "batch_input.1"),
        (["ok", ""], {}, "batch_input.1"),
        (["ok"], {"max_length": 0}, "max_length"),
        (["ok"], {"temperature": 0}, "temperature"),
    ],
)
async def test_bad_score_requests_name_the_field(tiny_scoring_engine, batch_input, params, field):
    with pytest.raises(InvalidRequest) as caught:
        await tiny_scoring_engine.get_scores(batch_input, **params)
    assert caught.value.field == field


async def test_a_scoring_model_refuses_chat(tiny_scoring_engine):
    with pytest.raises(InvalidRequest, match="use get_scores"):
        await tiny_scoring_engine.chat([{"role": "user", "content": "hi"}])
