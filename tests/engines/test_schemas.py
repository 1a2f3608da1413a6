import pytest
from pydantic import ValidationError

from engines.errors import InvalidRequest
from engines.schemas import GenerationParams, Message, parse_messages, parse_params


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"temperature": -0.1}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_length": 0}, "max_length"),
        ({"repetition_penalty": 0}, "repetition_penalty"),
        ({"num_return_sequences": 0}, "num_return_sequences"),
        ({"n": 0}, "n"),
        ({"stop": [""]}, "stop.0"),
        ({"stop": 3}, "stop"),
        ({"seed": "abc"}, "seed"),
        ({"temprature": 0.5}, "temprature"),
    ],
)
def test_bad_params_name_the_field(params, field):
    with pytest.raises(InvalidRequest) as caught:
        parse_params(params)
    assert caught.value.field == field
    assert field in str(caught.value)


def test_params_accept_n_and_a_single_stop_string():
    params = parse_params({"n": 3, "stop": "END", "temperature": 0})
    assert params.num_return_sequences == 3
    assert params.stop == ["END"]
    assert params.temperature == 0


def test_params_are_frozen():
    params = GenerationParams(temperature=0.5)
    with pytest.raises(ValidationError):
        params.temperature = 1.0  # type: ignore[misc]


def test_messages_take_strings_or_typed_parts():
    messages = parse_messages(
        [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "image", "image": "cat.png"}, {"type": "text", "text": "what?"}]},
        ]
    )
    assert messages[0] == Message(role="system", content="be brief")
    assert messages[1].text() == "what?"
    assert [part.type for part in messages[1].media()] == ["image"]


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        ([], "messages"),
        ([{"role": "robot", "content": "hi"}], "messages.0.role"),
        ([{"role": "user"}], "messages.0.content"),
        ([{"role": "user", "content": "hi", "name": "x y"}], "messages.0.name"),  # names are OpenAI's pattern
        ([{"role": "user", "content": [{"type": "smell", "smell": "x"}]}], "messages.0.content"),
        ("hello", "messages"),
        ({"role": "user", "content": "hi"}, "messages"),
    ],
)
def test_bad_messages_name_the_field(messages, field):
    with pytest.raises(InvalidRequest) as caught:
        parse_messages(messages)
    assert caught.value.field is not None and caught.value.field.startswith(field)
