"""`tool_choice` as a decoding constraint: the schemas a forced choice puts on the output (vLLM's)."""

import json

import pytest

from engines.errors import InvalidRequest
from engines.tool_schemas import NamedToolChoice, parse_tools
from engines.tools.choice import check_choice, forced_constraint, forced_parser
from engines.tools.parsers import JsonCallsParser, NamedCallParser

TOOLS = parse_tools(
    [
        {
            "name": "a",
            "parameters": {
                "type": "object",
                "properties": {"x": {"$ref": "#/$defs/X"}},
                "$defs": {"X": {"type": "integer"}},
            },
        },
        {"name": "b"},
    ]
)


def test_required_is_an_array_of_name_and_parameters_one_shape_per_tool():
    schema = json.loads(forced_constraint("required", TOOLS, parallel=True).schema_json)
    assert schema["type"] == "array" and schema["minItems"] == 1 and "maxItems" not in schema
    shapes = schema["items"]["anyOf"]
    assert [shape["properties"]["name"]["enum"] for shape in shapes] == [["a"], ["b"]]
    assert shapes[1]["properties"]["parameters"] == {"type": "object", "properties": {}}  # a tool without parameters
    assert schema["$defs"] == {"X": {"type": "integer"}}  # hoisted, where every $ref resolves
    assert list(shapes[0]["properties"]) == ["name", "parameters"]  # the name is written first
    single = json.loads(forced_constraint("required", TOOLS, parallel=False).schema_json)
    assert single["maxItems"] == 1


def test_a_named_choice_is_that_tools_arguments_and_auto_is_no_constraint():
    named = forced_constraint(NamedToolChoice(name="a"), TOOLS, parallel=True)
    assert json.loads(named.schema_json)["properties"] == {"x": {"$ref": "#/$defs/X"}}
    assert forced_constraint("auto", TOOLS, parallel=True) is None
    assert isinstance(forced_parser(NamedToolChoice(name="a")), NamedCallParser)
    assert isinstance(forced_parser("required"), JsonCallsParser) and forced_parser("auto") is None


@pytest.mark.parametrize(("choice", "tools"), [("required", None), (NamedToolChoice(name="ghost"), TOOLS)])
def test_a_choice_that_cannot_be_met_is_refused_by_name(choice, tools):
    with pytest.raises(InvalidRequest) as caught:
        check_choice(choice, tools)
    assert caught.value.field == "tool_choice"


def test_tools_defining_one_name_two_ways_are_refused():
    clash = parse_tools(
        [
            {"name": "a", "parameters": {"type": "object", "$defs": {"X": {"type": "integer"}}}},
            {"name": "b", "parameters": {"type": "object", "$defs": {"X": {"type": "string"}}}},
        ]
    )
    with pytest.raises(InvalidRequest) as caught:
        forced_constraint("required", clash, parallel=True)
    assert caught.value.field == "tools.1.parameters"


@pytest.mark.parametrize(
    ("tools", "field"),
    [
        ("{not json", "tools"),
        ("42", "tools"),
        ([{"type": "web_search"}], "tools.0.type"),
        ([{"name": "has space"}], "tools.0.name"),
        ([{"name": "a"}, {"name": "a"}], "tools.1.name"),
    ],
)
def test_bad_tools_are_refused_by_name(tools, field):
    with pytest.raises(InvalidRequest) as caught:
        parse_tools(tools)
    assert caught.value.field == field
