import pytest

from engines.errors import InvalidRequest
from engines.params import BUILTIN_DEFAULTS, resolve
from engines.schemas import GenerationParams


def _resolve(request=None, defaults=None, prompt_length=10, context_length=100):
    return resolve(
        GenerationParams(**(request or {})),
        GenerationParams(**(defaults or {})),
        prompt_length=prompt_length,
        context_length=context_length,
        stop_token_ids=(2,),
    )


def test_builtin_defaults_are_llamafactorys():
    resolved = _resolve(context_length=10_000)
    assert (resolved.do_sample, resolved.temperature, resolved.top_p, resolved.top_k) == (True, 0.95, 0.7, 50)
    assert resolved.max_new_tokens == BUILTIN_DEFAULTS.max_new_tokens == 1024
    assert resolved.n == 1 and resolved.skip_special_tokens is True and resolved.stop == ()


def test_temperature_zero_means_greedy():
    resolved = _resolve({"temperature": 0})
    assert not resolved.do_sample and resolved.temperature == 0.0 and resolved.top_k == 0 and resolved.top_p == 1.0


def test_do_sample_false_means_greedy_whatever_the_temperature():
    resolved = _resolve({"do_sample": False, "temperature": 0.7})
    assert not resolved.do_sample and resolved.temperature == 0.0


def test_n_above_one_forces_sampling():
    resolved = _resolve({"n": 3, "temperature": 0})
    assert resolved.do_sample and resolved.temperature == 1.0 and resolved.n == 3
    assert _resolve({"n": 2, "temperature": 0.3}).temperature == 0.3


def test_request_overrides_engine_defaults_which_override_builtins():
    resolved = _resolve({"top_p": 0.5}, {"top_p": 0.9, "top_k": 7, "seed": 1})
    assert (resolved.top_p, resolved.top_k, resolved.seed) == (0.5, 7, 1)


def test_max_new_tokens_wins_over_max_length():
    assert _resolve({"max_new_tokens": 5, "max_length": 50}).max_new_tokens == 5
    assert _resolve({"max_length": 50}, prompt_length=10).max_new_tokens == 40
    # a request's max_length beats the engine's default max_new_tokens
    assert _resolve({"max_length": 30}, {"max_new_tokens": 5}).max_new_tokens == 20


def test_max_length_without_room_is_an_error():
    with pytest.raises(InvalidRequest) as caught:
        _resolve({"max_length": 10}, prompt_length=10)
    assert caught.value.field == "max_length"


def test_new_tokens_are_clipped_to_the_context():
    assert _resolve({"max_new_tokens": 500}, prompt_length=90, context_length=100).max_new_tokens == 10


def test_a_prompt_that_fills_the_context_is_refused():
    with pytest.raises(InvalidRequest) as caught:
        _resolve(prompt_length=100, context_length=100)
    assert caught.value.field == "messages"
    assert "100" in caught.value.message


def test_length_penalty_other_than_one_is_refused():
    assert _resolve({"length_penalty": 1.0}).n == 1
    with pytest.raises(InvalidRequest) as caught:
        _resolve({"length_penalty": 1.2})
    assert caught.value.field == "length_penalty"


def test_stop_strings_and_end_of_turn_tokens_pass_through():
    resolved = _resolve({"stop": ["\n\n", "END"]})
    assert resolved.stop == ("\n\n", "END") and resolved.stop_token_ids == (2,)


@pytest.mark.parametrize(("held", "field"), [({"min_tokens": 5}, "min_tokens"), ({"ignore_eos": True}, "ignore_eos")])
def test_what_holds_the_end_back_is_refused_beside_a_json_constraint(held, field):
    with pytest.raises(InvalidRequest) as caught:
        _resolve({**held, "response_format": {"type": "json_object"}})
    assert caught.value.field == field and "response_format" in caught.value.message
    assert _resolve(held).constraint is None  # alone, each is fine
    # an engine's default for them does not apply to a constrained answer, and refuses nothing
    assert not _resolve({"response_format": {"type": "json_object"}}, held).ignore_eos
    assert _resolve({"response_format": {"type": "json_object"}}, held).min_tokens == 0
