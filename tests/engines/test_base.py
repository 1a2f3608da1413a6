"""What `BaseEngine.prepare_chat` decides for every engine, shown on the tiny random-weight Llama (and a tiny
LLaVA, for images): how its answer will be read (thoughts, tool calls), what a tool format needs of decoding,
and what the context must hold."""

import json

import pytest
from tokenizers.processors import TemplateProcessing

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


def test_hermes_tags_that_are_special_tokens_are_decoded_with_tools(tiny_engine, tiny_llama_dir, monkeypatch):
    # Hermes 2 Pro's and Hermes 3's checkpoints add <tool_call> as a special token (Qwen's is not special):
    # skipped in decoding, the parser would never see a call, and its JSON would be the answer's text.
    from transformers import AutoTokenizer

    hermes_like = AutoTokenizer.from_pretrained(tiny_llama_dir)
    hermes_like.add_special_tokens({"additional_special_tokens": ["<tool_call>", "</tool_call>"]})
    monkeypatch.setattr(tiny_engine, "tool_format", "hermes")
    assert tiny_engine.prepare_chat(QUESTION, tools=[WEATHER]).params.skip_special_tokens  # plain text tags
    monkeypatch.setattr(tiny_engine, "tokenizer", hermes_like)
    assert not tiny_engine.prepare_chat(QUESTION, tools=[WEATHER]).params.skip_special_tokens
    assert tiny_engine.prepare_chat(QUESTION).params.skip_special_tokens  # no tools: special tokens skipped


# Qwen3-Coder's way of asking for calls (its template, cut down): XML that no parser here reads
QWEN3_CODER = (
    "{% if tools %}<tools>{{ tools | tojson }}</tools> Call as <tool_call>\n<function=NAME>\n<parameter=P>\nV\n"
    "</parameter>\n</function>\n</tool_call>{% endif %}{% for m in messages %}{{ m['content'] }}{% endfor %}"
)


def test_tools_for_a_model_whose_call_syntax_inferq_cannot_read_are_refused_by_name(tiny_engine, monkeypatch):
    # Read as Hermes, Qwen3-Coder's calls came back as answer text with finish_reason "stop", silently.
    from engines.prompt import output_habits

    monkeypatch.setattr(tiny_engine.tokenizer, "chat_template", QWEN3_CODER)
    tool_format, _ = output_habits(tiny_engine.tokenizer, "auto", "auto")
    monkeypatch.setattr(tiny_engine, "tool_format", tool_format)
    with pytest.raises(InvalidRequest) as caught:
        tiny_engine.prepare_chat(QUESTION, tools=[WEATHER])
    assert caught.value.field == "tools" and "engine_args.tool_format" in caught.value.message
    assert tiny_engine.prepare_chat(QUESTION).prompt_length  # without tools it serves as before
    # the worker may say how the model writes calls: then they are offered and read in that format
    assert output_habits(tiny_engine.tokenizer, "hermes", "auto")[0] == "hermes"


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


def test_a_template_that_writes_the_bos_gets_no_second_one_with_an_image(vision_engine, monkeypatch):
    # Gemma 3's and Llama 3.2 Vision's templates write {{ bos_token }} and their tokenizers add one too: the
    # processor must not add it again (as transformers' own apply_chat_template decides), nor leave it out
    # for a template that writes none. The tiny LLaVA's tokenizer is given such a BOS here.
    tokenizer = vision_engine._processor.tokenizer
    assert tokenizer is vision_engine.tokenizer
    bos_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    own_bos, own_post_processor = tokenizer.bos_token, tokenizer._tokenizer.post_processor
    tokenizer.bos_token = "<|endoftext|>"  # (monkeypatch cannot put a tokenizer's special token back)
    tokenizer._tokenizer.post_processor = TemplateProcessing(
        single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", bos_id)]
    )
    try:
        plain = vision_engine.prepare_chat(QUESTION, images=[DATA_URL]).prompt_ids
        assert plain[0] == bos_id and plain[1] != bos_id  # the template wrote none: the tokenizer's is kept
        monkeypatch.setattr(tokenizer, "chat_template", "{{ bos_token }}" + tokenizer.chat_template)
        written = vision_engine.prepare_chat(QUESTION, images=[DATA_URL]).prompt_ids
        assert written == plain  # the template's BOS, and no second one
    finally:
        tokenizer.bos_token, tokenizer._tokenizer.post_processor = own_bos, own_post_processor
