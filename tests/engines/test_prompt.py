import pytest
from transformers import AutoTokenizer

from engines.errors import InvalidRequest
from engines.prompt import attach_media, build_prompt, check_media, end_of_turn_ids, prepare_tokenizer
from engines.schemas import Message, parse_messages
from engines.tool_schemas import parse_tools


@pytest.fixture(scope="module")
def tokenizer(smollm2_dir):
    return AutoTokenizer.from_pretrained(smollm2_dir)


def test_prompt_is_the_tokenizers_own_template(tokenizer):
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    text, ids = build_prompt(tokenizer, parse_messages(messages), None, None)
    expected = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=False)
    assert ids == expected
    assert text.endswith("<|im_start|>assistant\n")


def test_system_argument_becomes_the_first_message(tokenizer):
    text, _ = build_prompt(tokenizer, parse_messages([{"role": "user", "content": "hi"}]), "Answer in French.", None)
    assert text.startswith("<|im_start|>system\nAnswer in French.<|im_end|>")


def test_a_template_that_renders_tools_gets_them_in_openais_shape(tokenizer):
    template = (
        "{% for t in tools %}[{{ t.function.name }}]{% endfor %}{% for m in messages %}{{ m.content }}{% endfor %}"
    )
    tokenizer = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    prepare_tokenizer(tokenizer, template)
    tools = parse_tools('[{"name": "search"}]')  # LLaMA-Factory passes tools as a JSON string
    text, _ = build_prompt(tokenizer, parse_messages([{"role": "user", "content": "hi"}]), None, tools)
    assert text == "[search]hi"


def test_a_participant_name_reaches_a_template_that_writes_it_and_is_absent_elsewhere(tokenizer):
    template = "{% for m in messages %}{{ m.name if m.name is defined else '-' }}:{{ m.content }};{% endfor %}"
    tokenizer = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    prepare_tokenizer(tokenizer, template)
    turns = [
        {"role": "user", "content": "hi", "name": "alice"},
        {"role": "assistant", "content": "hello", "name": "planner"},
        {"role": "user", "content": "go"},
    ]
    text, _ = build_prompt(tokenizer, parse_messages(turns), None, None)
    assert text == "alice:hi;planner:hello;-:go;"
    with pytest.raises(InvalidRequest) as caught:
        parse_messages([{"role": "user", "content": "hi", "name": "has space"}])
    assert caught.value.field == "messages.0.name"


def test_a_template_without_tools_gets_them_in_its_system_message_in_the_hermes_format(tokenizer):
    tools = parse_tools([{"name": "get_weather", "parameters": {"type": "object", "properties": {}}}])
    messages = parse_messages(
        [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c1", "name": "get_weather", "arguments": '{"city": "Paris"}'}],
            },
            {"role": "tool", "content": "sunny", "tool_call_id": "c1"},
        ]
    )
    text, _ = build_prompt(tokenizer, messages, "Be brief.", tools)
    assert "Be brief.\n\n# Tools" in text and '"name": "get_weather"' in text  # the prompt LLaMA-Factory writes
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in text
    assert "<tool_response>\nsunny\n</tool_response>" in text  # the result, as a user turn


@pytest.mark.parametrize(
    ("messages", "system", "tools", "field"),
    [
        ([{"role": "system", "content": "a"}, {"role": "user", "content": "b"}], "again", None, "system"),
        ([{"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}], None, None, "messages"),
        (
            [{"role": "user", "content": "b"}, {"role": "system", "content": "c"}, {"role": "user", "content": "d"}],
            None,
            None,
            "messages.1.role",
        ),
    ],
)
def test_bad_conversations_name_the_field(tokenizer, messages, system, tools, field):
    with pytest.raises(InvalidRequest) as caught:
        build_prompt(tokenizer, parse_messages(messages), system, parse_tools(tools))
    assert caught.value.field == field


def test_template_errors_become_invalid_requests(tokenizer):
    tokenizer = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    prepare_tokenizer(tokenizer, "{{ raise_exception('roles must alternate') }}")
    with pytest.raises(InvalidRequest, match="roles must alternate") as caught:
        build_prompt(tokenizer, parse_messages([{"role": "user", "content": "b"}]), None, None)
    assert caught.value.field == "messages"


def test_media_on_a_text_only_model_is_refused_with_its_location():
    messages = parse_messages(
        [{"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "image", "image": "a.png"}]}]
    )
    with pytest.raises(InvalidRequest) as caught:
        check_media(messages, frozenset())
    assert caught.value.field == "messages.0.content.1"
    assert check_media(messages, frozenset({"image"})) == {"image": [("a.png", "messages.0.content.1")]}


def test_media_arguments_lead_the_first_user_message():
    messages = attach_media(parse_messages([{"role": "user", "content": "describe"}]), ["a.png", "b.png"], None, None)
    assert [part.type for part in messages[0].content] == ["image", "image", "text"]
    assert messages[0] == Message(role="user", content=[*messages[0].content])


def test_a_tokenizer_without_template_is_refused(tokenizer):
    tokenizer = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    tokenizer.chat_template = None
    with pytest.raises(InvalidRequest) as caught:
        prepare_tokenizer(tokenizer, None)
    assert caught.value.field == "engine_args.chat_template"


def test_end_of_turn_ids_join_tokenizer_and_generation_config(tokenizer):
    assert end_of_turn_ids(tokenizer, None) == (tokenizer.eos_token_id,)
    assert end_of_turn_ids(tokenizer, [7, tokenizer.eos_token_id]) == tuple(sorted({7, tokenizer.eos_token_id}))


# Gemma 2's rules, as its template enforces them: no system turn, and user and assistant alternate.
ALTERNATING_NO_SYSTEM = (
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate') }}{% endif %}"
    "<turn>{{ m['role'] }}\n{{ m['content'] }}</turn>\n{% endfor %}<turn>model\n"
)


def test_a_template_without_system_turns_gets_the_tools_and_parallel_results_in_user_turns(tokenizer):
    tokenizer = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    prepare_tokenizer(tokenizer, ALTERNATING_NO_SYSTEM)
    tools = parse_tools([{"name": "get_weather", "parameters": {"type": "object", "properties": {}}}])
    calls = [{"id": f"c{i}", "name": "get_weather", "arguments": "{}"} for i in (1, 2)]
    messages = parse_messages([
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "rainy"},
    ])  # fmt: skip
    text, _ = build_prompt(tokenizer, messages, None, tools)
    assert text.startswith("<turn>user\n# Tools") and text.endswith("<turn>model")
    assert text.count("<turn>user") == 2 and "sunny\n</tool_response>\n<tool_response>\nrainy" in text
