"""A reasoning model's thoughts split from its answer, whatever the pieces the text arrives in."""

import pytest

from engines.pieces import ContentPiece, ReasoningPiece
from engines.reasoning import ReasoningSplitter, prompt_opens_thinking, template_thinks


@pytest.mark.parametrize(
    ("starts_inside", "text", "thoughts", "answer"),
    [
        (False, "<think>\nLet me\n\nthink.\n</think>\n\nParis.", "Let me\n\nthink.", "Paris."),
        (True, "already inside </think>Paris", "already inside", "Paris"),
        (False, "Paris, no thoughts <think>x</think>", "", "Paris, no thoughts <think>x</think>"),
        (False, "<thi", "", "<thi"),
        (False, "<think>cut off before the end", "cut off before the end", ""),
    ],
)
@pytest.mark.parametrize("piece_size", [1, 2, 5, 1000])
def test_thoughts_and_answer_are_the_same_however_the_text_arrives(starts_inside, text, thoughts, answer, piece_size):
    splitter = ReasoningSplitter(starts_inside)
    pieces = []
    for start in range(0, len(text), piece_size):
        pieces += splitter.feed(text[start : start + piece_size])
    pieces += splitter.finish()
    assert "".join(p.text for p in pieces if isinstance(p, ReasoningPiece)) == thoughts
    assert "".join(p.text for p in pieces if isinstance(p, ContentPiece)) == answer


def test_templates_that_think_are_told_apart():
    assert template_thinks("{% if '</think>' in content %}...") and not template_thinks("{{ messages }}")
    assert prompt_opens_thinking("<|im_start|>assistant\n<think>\n") and not prompt_opens_thinking("assistant\n")
