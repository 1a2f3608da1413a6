"""The HF engine's grammar cache (engines/hf/grammar.py): bounded, least recently used out first, and the only
cache (xgrammar's own is off)."""

import pytest

from engines.constraints import DecodingConstraint
from engines.hf import grammar
from engines.hf.grammar import Grammars

CAP = 3  # the real cap, 256, shown small: every schema costs a compile


def _schema(number: int) -> DecodingConstraint:
    return DecodingConstraint.from_schema(
        {"type": "object", "properties": {f"field_{number}": {"type": "integer"}}, "required": [f"field_{number}"]},
        "response_format",
    )


@pytest.fixture
def grammars(tiny_engine, monkeypatch):
    pytest.importorskip("xgrammar")
    monkeypatch.setattr(grammar, "MAX_COMPILED_GRAMMARS", CAP)
    return Grammars(tiny_engine.tokenizer, tiny_engine.vocab_size, tiny_engine.stop_token_ids)


def test_the_cache_keeps_the_most_recently_used_schemas_up_to_its_cap(grammars):
    first = grammars.compile(_schema(0))
    for number in range(1, CAP + 3):
        grammars.compile(_schema(number))
        grammars.compile(_schema(0))  # used again each time: never the least recent
    assert len(grammars._compiled) == CAP
    assert grammars.compile(_schema(0)) is first
    assert _schema(1).schema_json not in grammars._compiled  # the least recently used went first
    assert grammars._compiler.get_cache_size_bytes() == 0  # nothing kept twice, unbounded, by xgrammar
    # the newest grammar works: it takes its own schema's JSON, and no other's
    assert grammars.matcher(_schema(CAP + 2)).accept_string(f'{{"field_{CAP + 2}": 7}}')
    assert not grammars.matcher(_schema(CAP + 2)).accept_string('{"field_0": 7}')
