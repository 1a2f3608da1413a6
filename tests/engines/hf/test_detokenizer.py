import random

import pytest
from transformers import AutoTokenizer

from engines.hf.detokenizer import IncrementalDetokenizer

TEXTS = [
    "The capital of France is Paris.",
    "Émile a mangé 3 crêpes 🥞 à Zürich — naïvement!",
    "数学は楽しい。🙂 ok",
    "  leading spaces\n\nand\ttabs  ",
]


@pytest.fixture(scope="module")
def tokenizer(smollm2_dir):
    return AutoTokenizer.from_pretrained(smollm2_dir)


@pytest.mark.parametrize("text", TEXTS)
def test_incremental_text_equals_decoding_everything_at_once(tokenizer, text):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    detokenizer = IncrementalDetokenizer(tokenizer, skip_special_tokens=True)
    pieces = [detokenizer.add(token) for token in ids] + [detokenizer.flush()]
    assert "".join(pieces) == tokenizer.decode(ids, skip_special_tokens=True) == text
    assert not any("\ufffd" in piece for piece in pieces)  # split characters are held, not shown broken


def test_random_token_soup_still_matches_full_decode(tokenizer):
    rng = random.Random(0)
    ids = [rng.randrange(len(tokenizer)) for _ in range(300)]
    for skip in (True, False):
        detokenizer = IncrementalDetokenizer(tokenizer, skip_special_tokens=skip)
        joined = "".join(detokenizer.add(token) for token in ids) + detokenizer.flush()
        assert joined == tokenizer.decode(ids, skip_special_tokens=skip)


def test_special_tokens_show_only_when_asked(tokenizer):
    ids = tokenizer("<|im_start|>hi", add_special_tokens=False)["input_ids"]
    shown = IncrementalDetokenizer(tokenizer, skip_special_tokens=False)
    hidden = IncrementalDetokenizer(tokenizer, skip_special_tokens=True)
    assert "".join(shown.add(t) for t in ids) + shown.flush() == "<|im_start|>hi"
    assert "".join(hidden.add(t) for t in ids) + hidden.flush() == "hi"
