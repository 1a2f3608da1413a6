"""OpenAI batch input lines: checked as the gateway checks its bodies, refused per line, naming the field."""

import json

import pytest

from batch.lines import BatchLine, LineError
from engines.errors import InvalidRequest
from gateway.batch_lines import openai_lines, read_batch_input


def chat_line(custom_id, **body):
    body = {"messages": [{"role": "user", "content": "hi"}], **body}
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body})


def parse(*raw, model="echo"):
    return list(openai_lines(raw, model))


def test_a_chat_line_becomes_the_job_the_gateway_would_submit():
    [line] = parse(chat_line("q1", model="m", max_tokens=7, temperature=0.5, stop=["x"]))
    assert isinstance(line, BatchLine)
    assert (line.custom_id, line.index, line.url, line.model) == ("q1", 0, "/v1/chat/completions", "m")
    assert line.messages[0].content == "hi"
    assert line.options == {"max_new_tokens": 7, "temperature": 0.5, "stop": ["x"]}


def test_a_body_without_a_model_takes_the_batchs():
    [line] = parse(chat_line("q1"), model="default-model")
    assert line.model == "default-model"


def test_a_score_line_carries_texts_or_conversations():
    texts = json.dumps({"custom_id": "s", "url": "/v1/score", "body": {"messages": ["a b", "c"], "max_length": 9}})
    chats = json.dumps(
        {"custom_id": "c", "url": "/v1/score", "body": {"conversations": [[{"role": "user", "content": "q"},
                                                                           {"role": "assistant", "content": "a"}]]}}
    )  # fmt: skip
    first, second = parse(texts, chats)
    assert first.texts == ["a b", "c"] and first.options == {"max_length": 9}
    assert [message.role for message in second.conversations[0]] == ["user", "assistant"]


def test_bad_lines_are_refused_one_by_one_and_the_rest_stand():
    results = parse(
        chat_line("ok"),
        "{not json",
        chat_line("ok"),  # a duplicate custom_id
        json.dumps({"custom_id": "u", "url": "/v1/embeddings", "body": {}}),
        chat_line("t", temperature=3),
        chat_line("n", temperature=float("nan")).replace("NaN", "NaN"),
        chat_line("s", stream=True),
        json.dumps({"custom_id": "x", "url": "/v1/chat/completions", "body": {}, "extra": 1}),
        chat_line("m", messages=[{"role": "wizard", "content": "hi"}]),
        "",
        chat_line("last"),
    )
    assert isinstance(results[0], BatchLine) and isinstance(results[-1], BatchLine)
    refused = {(error.index, error.param) for error in results if isinstance(error, LineError)}
    assert refused == {
        (1, None),
        (2, "custom_id"),
        (3, "url"),
        (4, "body.temperature"),
        (5, "body.temperature"),
        (6, "body.stream"),
        (7, "extra"),
        (8, "body.messages.0.role"),
    }
    assert results[-1].index == 10  # indexes count input lines, blank ones too


def test_a_completion_line_carries_its_raw_prompt_and_echo():
    body = {"prompt": "Once upon a time", "max_tokens": 5, "echo": True, "logprobs": None}
    [line] = parse(json.dumps({"custom_id": "p", "url": "/v1/completions", "body": body}))
    assert (line.url, line.prompt, line.echo, line.messages) == ("/v1/completions", "Once upon a time", True, None)
    assert line.options == {"max_new_tokens": 5}
    two_prompts = {"prompt": ["a", "b"]}
    streamed = {"prompt": "a", "stream": True}
    refused = parse(*(json.dumps({"custom_id": f"x{i}", "url": "/v1/completions", "body": b})
                      for i, b in enumerate((two_prompts, streamed))))  # fmt: skip
    assert [(error.param, error.custom_id) for error in refused] == [("body.prompt", "x0"), ("body.stream", "x1")]


def test_a_lone_surrogate_is_refused_by_the_field_that_holds_it():
    # JSON's escapes, as a client wrote them: json.dumps would never write a lone surrogate of its own
    line = '{{"custom_id": "{}", "url": "/v1/chat/completions", "body": {}}}'
    results = parse(
        line.format("\\ud800", '{"messages": [{"role": "user", "content": "hi"}]}'),
        line.format("c1", '{"messages": [{"role": "user", "content": "a \\udfff b"}]}'),
        line.format("c2", '{"messages": [{"role": "user", "content": "hi"}], "metadata": {"\\ud800": "x"}}'),
        line.format("pair", '{"messages": [{"role": "user", "content": "\\ud83d\\ude00"}]}'),  # a whole pair: text
    )
    refused = [(error.custom_id, error.param) for error in results if isinstance(error, LineError)]
    assert refused == [(None, "custom_id"), ("c1", "body.messages.0.content"), ("c2", "body.metadata")]
    assert all("lone surrogate" in error.message for error in results[:3])
    assert results[3].messages[0].content == "\U0001f600"


def test_an_input_is_read_to_its_cap_and_no_further():
    raw = b"".join(f"{chat_line(f'q{i}', model='m')}\n\n".encode() for i in range(3)) + b"1\n"
    batch_input = read_batch_input(raw, "/v1/chat/completions", max_requests=4)  # blank lines are no requests
    assert [line.custom_id for line in batch_input.lines] == ["q0", "q1", "q2"]
    assert [(error.index, error.message) for error in batch_input.refusals] == [(6, "each line must be a JSON object")]
    with pytest.raises(InvalidRequest) as over:
        read_batch_input(raw + b"2\n", "/v1/chat/completions", max_requests=4)
    assert over.value.field == "input_file_id" and "4 requests" in over.value.message
