"""The tool-call parsers, fed the same text whole and in every piece size: the pieces always add up to the
same answer, the same calls and the same arguments (a streamed call equals the recorded one)."""

import json

import pytest

from engines.pieces import CallArguments, CallStart, ContentPiece
from engines.tools.parsers import JsonCallsParser, MistralParser, NamedCallParser, ReActParser, TaggedParser

HERMES = (
    'Let me check.<tool_call>\n{"name": "get_weather", "arguments": {"location": "San Francisco, CA", '
    '"tricky": [1, {"brace": "}"}], "quote": "a \\"b\\" c"}}\n</tool_call>\n'
    '<tool_call>{"arguments": {"x": 1}, "name": "second"}</tool_call>'
)


def run(make_parser, text: str, piece_size: int):
    parser = make_parser()
    pieces = []
    for start in range(0, len(text), piece_size):
        pieces += parser.feed(text[start : start + piece_size])
    pieces += parser.finish()
    content = "".join(piece.text for piece in pieces if isinstance(piece, ContentPiece))
    starts = [(piece.index, piece.name) for piece in pieces if isinstance(piece, CallStart)]
    arguments: dict[int, str] = {}
    for piece in pieces:
        if isinstance(piece, CallArguments):
            assert piece.index < len(starts), "arguments came before their call's name"
            arguments[piece.index] = arguments.get(piece.index, "") + piece.text
    calls = [(call.name, call.arguments) for call in parser.calls()]
    return content, starts, arguments, calls


CASES = [
    pytest.param(
        TaggedParser,
        HERMES,
        "Let me check.\n",
        [
            ("get_weather", {"location": "San Francisco, CA", "tricky": [1, {"brace": "}"}], "quote": 'a "b" c'}),
            ("second", {"x": 1}),
        ],
        id="hermes",
    ),
    pytest.param(
        TaggedParser, "No calls here, only a < and a <tool", "No calls here, only a < and a <tool", [], id="hermes-none"
    ),
    pytest.param(
        TaggedParser,
        '<tool_call>{"name": "cut", "arguments": {"partial": "yes"',  # cut off by max tokens: still a call
        "",
        [("cut", None)],
        id="hermes-cut-off",
    ),
    pytest.param(
        lambda: JsonCallsParser(optional_prefix="<|python_tag|>"),
        '<|python_tag|>{"name": "f", "parameters": {"q": 2}}; {"name": "g", "parameters": {"r": "s"}}',
        "",
        [("f", {"q": 2}), ("g", {"r": "s"})],
        id="llama3-json",
    ),
    pytest.param(
        lambda: JsonCallsParser(optional_prefix="<|python_tag|>"),
        "Paris {not a call}",
        "Paris {not a call}",
        [],
        id="llama3-text",
    ),
    pytest.param(
        lambda: JsonCallsParser(optional_prefix="<|python_tag|>"),
        '{"user": {"name": "Bob", "age": 3}}',  # a nested `name` is an argument's, not the call's
        '{"user": {"name": "Bob", "age": 3}}',
        [],
        id="llama3-json-answer",
    ),
    pytest.param(
        lambda: JsonCallsParser(optional_prefix="<|python_tag|>"),
        '{"name": "Bob", "age": 3}',  # a name but no parameters: an answer, not a call
        '{"name": "Bob", "age": 3}',
        [],
        id="llama3-json-answer-with-a-name",
    ),
    pytest.param(
        lambda: JsonCallsParser(optional_prefix="<|python_tag|>"),
        '[{"a": 1}, {"b": 2}]',
        '[{"a": 1}, {"b": 2}]',  # brackets and commas kept
        [],
        id="llama3-json-array-answer",
    ),
    pytest.param(
        lambda: JsonCallsParser(optional_prefix="<|python_tag|>"),
        "[1] Smith et al. wrote",
        "[1] Smith et al. wrote",
        [],
        id="llama3-citation",
    ),
    pytest.param(
        TaggedParser,
        '<tool_call>{"arguments": {"name": "Bob"}, "name": "get_user"}</tool_call>',
        "",
        [("get_user", {"name": "Bob"})],
        id="hermes-name-inside-the-arguments",
    ),
    pytest.param(
        MistralParser,
        'Sure. [TOOL_CALLS] [{"name": "a", "arguments": {"k": "v"}}, {"name": "b", "arguments": {}}]',
        "Sure. ",
        [("a", {"k": "v"}), ("b", {})],
        id="mistral",
    ),
    pytest.param(
        MistralParser,
        'Sure. [TOOL_CALLS] [{"name": "f", "arguments": {}}] Let me know.',
        "Sure. Let me know.",  # the array's brackets and commas are the calls', not the answer's
        [("f", {})],
        id="mistral-text-after",
    ),
    pytest.param(
        MistralParser,
        'Sure. [TOOL_CALLS]get_weather[ARGS]{"city": "Paris", "when": ["now"]}',
        "Sure. ",
        [("get_weather", {"city": "Paris", "when": ["now"]})],
        id="mistral-v11",  # Mistral Small 3.1/3.2, Magistral, Devstral: a name, then its arguments
    ),
    pytest.param(
        MistralParser,
        '[TOOL_CALLS]a[ARGS]{"k": "v"} [TOOL_CALLS]b[CALL_ID]a1b2c3d4e[ARGS]{} Let me know.',
        "Let me know.",
        [("a", {"k": "v"}), ("b", {})],
        id="mistral-v11-two-calls-with-an-id",
    ),
    pytest.param(
        MistralParser,
        "Use [TOOL_CALLS]wisely",  # a marker, and no call after it: the text, as written
        "Use [TOOL_CALLS]wisely",
        [],
        id="mistral-v11-no-call",
    ),
    pytest.param(
        MistralParser,
        "[TOOL_CALLS]f[CALL_ID]abc",  # cut off before its arguments: no call, the text as written
        "[TOOL_CALLS]f[CALL_ID]abc",
        [],
        id="mistral-v11-cut-before-arguments",
    ),
    pytest.param(
        lambda: JsonCallsParser(optional_prefix="<|python_tag|>"),
        '{"name": "f", "parameters": {}}; Done.',
        "Done.",
        [("f", {})],
        id="llama3-text-after",
    ),
    pytest.param(
        lambda: JsonCallsParser(always_calls=True),
        '[{"name": "get_weather", "parameters": {"location": "Paris"}}]',
        "",
        [("get_weather", {"location": "Paris"})],
        id="required",
    ),
    pytest.param(
        ReActParser,
        'I will look.\nAction: get_weather\nAction Input: {"location": "SF"}',
        "I will look.\n",
        [("get_weather", {"location": "SF"})],
        id="react",
    ),
    pytest.param(
        ReActParser,
        "Action: get_weather\nAction Input: Paris is nice",  # no JSON object: no call, as LLaMA-Factory reads it
        "Action: get_weather\nAction Input: Paris is nice",
        [],
        id="react-no-json",
    ),
    pytest.param(
        lambda: NamedCallParser("get_weather"),
        '{"location": "SF"}',
        "",
        [("get_weather", {"location": "SF"})],
        id="named",
    ),
]


@pytest.mark.parametrize(("make_parser", "text", "content", "calls"), CASES)
@pytest.mark.parametrize("piece_size", [1, 2, 3, 7, 10_000])
def test_any_split_of_the_text_gives_the_same_calls_and_the_same_answer(make_parser, text, content, calls, piece_size):
    found_content, starts, arguments, found_calls = run(make_parser, text, piece_size)
    assert found_content == content
    assert [name for _, name in starts] == [name for name, _ in calls]
    for index, (name, expected) in enumerate(calls):
        streamed = arguments.get(index, "")
        assert found_calls[index] == (name, found_calls[index][1])
        assert streamed == found_calls[index][1] or (not streamed and found_calls[index][1] == "{}")
        if expected is not None:
            assert json.loads(found_calls[index][1]) == expected


def test_an_answer_that_opens_with_a_bracket_streams_before_it_ends():
    # "[1] Smith", "[link](...)": only "[{" may open a list of calls; anything else is content, streamed as it comes
    parser = JsonCallsParser(optional_prefix="<|python_tag|>")
    streamed = [piece.text for text in ("[", "1] Smith", " et al.") for piece in parser.feed(text)]
    assert "".join(streamed) == "[1] Smith et al." and not parser.finish()


def test_calls_get_ids_of_their_own():
    parser = TaggedParser()
    parser.feed(
        '<tool_call>{"name": "a", "arguments": {}}</tool_call><tool_call>{"name": "b", "arguments": {}}</tool_call>'
    )
    parser.finish()
    ids = [call.id for call in parser.calls()]
    assert len(set(ids)) == 2 and all(call_id.startswith("call_") for call_id in ids)
