"""What `BaseEngine.prepare_chat` decides for every engine, shown on the tiny random-weight Llama (and a tiny
LLaVA, for images): how its answer will be read (thoughts, tool calls), what a tool format needs of decoding,
and what the context must hold."""

import json

import pytest

from engines.errors import InvalidRequest
from tests.images import DATA_URL

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


@pytest.fixture(scope="module")
async def vision_engine():
    from engines import load_engine

    engine = load_engine("huggingface", "smollm2-vision")  # a tiny LLaVA: an image is 16 patch tokens
    yield engine
    await engine.close()


def test_the_context_must_hold_an_images_patch_tokens_not_just_its_placeholder(vision_engine, monkeypatch):
    text_only = vision_engine.prepare_chat(QUESTION).prompt_length
    with_image = vision_engine.prepare_chat(QUESTION, images=[DATA_URL]).prompt_length
    assert with_image > text_only + 1  # the placeholder widened to the image's patches
    # room for the text and its placeholder, not for the patches: refused, before any model work
    monkeypatch.setattr(vision_engine, "context_length", text_only + 4)
    with pytest.raises(InvalidRequest) as caught:
        vision_engine.prepare_chat(QUESTION, images=[DATA_URL])
    assert caught.value.field == "messages"
    # room for a few new tokens past the patches: the answer may have no more
    monkeypatch.setattr(vision_engine, "context_length", with_image + 3)
    request = vision_engine.prepare_chat(QUESTION, images=[DATA_URL], max_new_tokens=100)
    assert request.prompt_length + request.params.max_new_tokens == vision_engine.context_length
