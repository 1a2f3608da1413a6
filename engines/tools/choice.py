"""`tool_choice`: which calls the answer must be, enforced by decoding rather than asked for.

"required" and a named function cannot be left to a model's good will (a small model ignores them), so
they become a JSON schema the decoder must follow, vLLM's construction: "required" is an array of at least
one `{"name": <a tool's name>, "parameters": <its arguments>}` (one at most without parallel calls); a
named function is that function's arguments object alone. Either output is read by its own parser, so a
forced call always comes back as a call whose arguments match the tool's schema.
"""

from __future__ import annotations

from typing import Any

from engines.constraints import DecodingConstraint
from engines.errors import InvalidRequest
from engines.tool_schemas import FunctionTool, NamedToolChoice, ToolChoice
from engines.tools.parsers import JsonCallsParser, NamedCallParser, ToolCallParser

ANY_OBJECT: dict[str, Any] = {"type": "object", "properties": {}}


def check_choice(choice: ToolChoice | None, tools: list[FunctionTool] | None) -> None:
    if choice in (None, "auto", "none"):
        return
    if not tools:
        raise InvalidRequest("needs tools to choose from", field="tool_choice")
    if isinstance(choice, NamedToolChoice) and choice.name not in {tool.name for tool in tools}:
        raise InvalidRequest(f"names {choice.name!r}, which is not among the tools", field="tool_choice")


def forced_constraint(
    choice: ToolChoice | None, tools: list[FunctionTool] | None, parallel: bool
) -> DecodingConstraint | None:
    """The schema a forced choice puts on the output; None when the model chooses (auto, none)."""
    if isinstance(choice, NamedToolChoice):
        tool = next(tool for tool in tools if tool.name == choice.name)
        return DecodingConstraint.from_schema(tool.parameters or ANY_OBJECT, "tool_choice")
    if choice != "required":
        return None
    calls: dict[str, Any] = {
        "type": "array",
        "minItems": 1,
        "items": {"type": "object", "anyOf": [_call_schema(tool) for tool in tools]},
    }
    if not parallel:
        calls["maxItems"] = 1
    definitions = _shared_definitions(tools)
    if definitions:
        calls["$defs"] = definitions
    return DecodingConstraint.from_schema(calls, "tool_choice")


def forced_parser(choice: ToolChoice | None) -> ToolCallParser | None:
    if isinstance(choice, NamedToolChoice):
        return NamedCallParser(choice.name)
    if choice == "required":
        return JsonCallsParser(always_calls=True)
    return None


def _call_schema(tool: FunctionTool) -> dict[str, Any]:
    parameters = {key: value for key, value in (tool.parameters or ANY_OBJECT).items() if key != "$defs"}
    return {
        "properties": {"name": {"type": "string", "enum": [tool.name]}, "parameters": parameters},
        "required": ["name", "parameters"],
    }


def _shared_definitions(tools: list[FunctionTool]) -> dict[str, Any]:
    """Every tool's `$defs`, hoisted to the array's root, where the `$ref`s of all of them resolve."""
    merged: dict[str, Any] = {}
    for index, tool in enumerate(tools):
        for name, schema in ((tool.parameters or {}).get("$defs") or {}).items():
            if name in merged and merged[name] != schema:
                raise InvalidRequest(f"another tool defines {name!r} differently", field=f"tools.{index}.parameters")
            merged[name] = schema
    return merged
