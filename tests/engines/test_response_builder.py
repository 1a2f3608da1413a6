"""Deltas joined into Responses, read on the way (engines/output.py): the answer's text, its thoughts, its
tool calls, and the finish reason its caller sees."""

from engines.output import OutputPlan
from engines.pieces import CallArguments, CallStart, ContentPiece
from engines.response_builder import ResponseBuilder
from engines.schemas import Delta
from engines.tool_schemas import NamedToolChoice

CALLS = (
    '<tool_call>{"name": "a", "arguments": {"n": 1}}</tool_call>\n<tool_call>{"name": "b", "arguments": {}}</tool_call>'
)


def build(plan: OutputPlan, text: str, finish: str = "stop"):
    builder = ResponseBuilder(1, prompt_length=5, plan=plan)
    pieces = []
    for i in range(0, len(text), 4):
        last = i + 4 >= len(text)
        pieces += builder.add(Delta(0, text[i : i + 4], (i,), finish if last else None))
    return builder.responses()[0], pieces


def test_a_model_that_calls_tools_finishes_with_tool_calls_and_no_text():
    response, pieces = build(OutputPlan(tool_format="hermes"), "\n" + CALLS)
    assert [call.name for call in response.tool_calls] == ["a", "b"] and response.finish_reason == "tool_calls"
    assert response.response_text == ""  # the whitespace around calls is no answer
    assert [type(p) for p in pieces if not isinstance(p, ContentPiece)][:2] == [CallStart, CallArguments]


def test_without_parallel_calls_only_the_first_one_counts_streamed_or_recorded():
    response, pieces = build(OutputPlan(tool_format="hermes", parallel_tool_calls=False), CALLS)
    assert [call.name for call in response.tool_calls] == ["a"]
    assert {p.index for p in pieces if isinstance(p, CallStart | CallArguments)} == {0}


def test_a_call_forced_by_name_finishes_with_stop_as_openais_does():
    response, _ = build(OutputPlan(tool_format="hermes", tool_choice=NamedToolChoice(name="a")), '{"n": 1}')
    assert [(c.name, c.arguments) for c in response.tool_calls] == [
        ("a", '{"n": 1}')
    ] and response.finish_reason == "stop"


def test_thoughts_go_apart_and_plain_text_stays_text():
    response, _ = build(OutputPlan(thinks=True), "<think>hmm</think>Paris", finish="length")
    assert (response.reasoning_text, response.response_text, response.finish_reason) == ("hmm", "Paris", "length")
    plain, _ = build(OutputPlan(), "Just text <tool_call> with no tools", finish="stop")
    assert (plain.response_text, plain.tool_calls, plain.reasoning_text) == (
        "Just text <tool_call> with no tools",
        None,
        None,
    )


def test_an_answer_that_never_finished_is_abort_and_keeps_its_text():
    builder = ResponseBuilder(2, prompt_length=3)
    builder.add(Delta(0, "half", (1,)))
    builder.add(Delta(1, "done", (2,), "stop"))
    first, second = builder.responses()
    assert (first.response_text, first.finish_reason, second.finish_reason) == ("half", "abort", "stop")
