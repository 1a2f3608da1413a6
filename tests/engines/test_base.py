"""What `BaseEngine.prepare_chat` decides for every engine, shown on the tiny random-weight Llama: how its
answer will be read (thoughts, tool calls) and what a tool format needs of decoding."""

import json

import pytest

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
# A template whose generation prompt opens the thoughts, as DeepSeek-R1's distills and QwQ's do.
OPENS_THINKING = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant: <think>\n"


async def test_a_constrained_answer_of_a_model_that_opens_thinking_is_the_answer_not_thoughts(tiny_engine, monkeypatch):
    monkeypatch.setattr(tiny_engine.tokenizer, "chat_template", OPENS_THINKING)
    monkeypatch.setattr(tiny_engine, "thinks", True)
    assert tiny_engine.prepare_chat(QUESTION).output.thinks_from_the_start  # a free answer starts in thoughts
    shape = {"type": "json_schema", "schema": SCHEMA}
    [answer] = await tiny_engine.chat(QUESTION, max_new_tokens=24, response_format=shape)
    assert json.loads(answer.response_text).keys() == {"ok"} and answer.reasoning_text is None


@pytest.mark.parametrize(("asked", "skipped"), [(None, False), (True, True)])
def test_mistrals_special_call_marker_is_decoded_unless_the_request_says_otherwise(
    tiny_engine, monkeypatch, asked, skipped
):
    monkeypatch.setattr(tiny_engine, "tool_format", "mistral")
    request = tiny_engine.prepare_chat(QUESTION, tools=[WEATHER], skip_special_tokens=asked)
    assert request.params.skip_special_tokens is skipped
    assert tiny_engine.prepare_chat(QUESTION).params.skip_special_tokens  # no tools: special tokens skipped
