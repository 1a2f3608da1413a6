"""Tools in the engine contract: the functions a request offers, the calls a model makes, and the choice.

Shapes are flat and torch-free; OpenAI's nesting (`{"type": "function", "function": {...}}`) is the
gateway's business. `arguments` is JSON text, as OpenAI sends it: a model may write invalid JSON, and the
caller decides what to do with it (a call forced by `tool_choice` is constrained to valid JSON).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from engines.errors import InvalidRequest

# OpenAI's rule for function names; they also end up in prompts and grammars.
FUNCTION_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
MAX_TOOLS = 128


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class FunctionTool(_Model):
    """A function the model may call; `parameters` is its arguments' JSON schema."""

    name: str = Field(pattern=FUNCTION_NAME_PATTERN)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    def as_template_tool(self) -> dict[str, Any]:
        """What HuggingFace chat templates expect in `tools=`: OpenAI's wrapped shape."""
        function: dict[str, Any] = {"name": self.name}
        if self.description is not None:
            function["description"] = self.description
        function["parameters"] = self.parameters or {"type": "object", "properties": {}}
        return {"type": "function", "function": function}


class ToolCall(_Model):
    id: str = Field(min_length=1, max_length=128)
    name: str
    arguments: str = Field(description="JSON text of the arguments")


class NamedToolChoice(_Model):
    """Call exactly this function."""

    name: str = Field(pattern=FUNCTION_NAME_PATTERN)


ToolChoice = Literal["auto", "none", "required"] | NamedToolChoice

_TOOLS = TypeAdapter(list[FunctionTool])


def parse_tools(tools: Any) -> list[FunctionTool] | None:
    """`tools` as LLaMA-Factory passes them (a JSON string) or as a list of functions, bare or wrapped in
    OpenAI's `{"type": "function", "function": {...}}`; errors name the tool (`tools.2.name`)."""
    if tools is None:
        return None
    if isinstance(tools, str):
        try:
            tools = json.loads(tools)
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"not valid JSON: {exc.msg}", field="tools") from None
        tools = [tools] if isinstance(tools, dict) else tools
    if not isinstance(tools, list | tuple):
        raise InvalidRequest("must be a list of function tools", field="tools")
    if len(tools) > MAX_TOOLS:
        raise InvalidRequest(f"at most {MAX_TOOLS} tools", field="tools")
    bare = [_unwrapped(tool, i) for i, tool in enumerate(tools)]
    try:
        parsed = _TOOLS.validate_python(bare)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidRequest(first["msg"], field=".".join(map(str, ("tools", *first["loc"])))) from None
    names = [tool.name for tool in parsed]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise InvalidRequest(f"two tools are named {name!r}", field=f"tools.{i}.name")
    return parsed


def _unwrapped(tool: Any, index: int) -> Any:
    if isinstance(tool, FunctionTool):
        return tool.model_dump()
    if isinstance(tool, dict) and tool.get("type") == "function" and "function" in tool:
        if set(tool) - {"type", "function"}:
            raise InvalidRequest("a wrapped tool has only type and function", field=f"tools.{index}")
        return tool["function"]
    if isinstance(tool, dict) and tool.get("type", "function") != "function":
        raise InvalidRequest(f"only function tools are served, not {tool.get('type')!r}", field=f"tools.{index}.type")
    return {key: value for key, value in tool.items() if key != "type"} if isinstance(tool, dict) else tool
