"""A conversation with tools, as the chat template gets it.

A template that renders tools gets them as `tools=` and the conversation's past calls and results in the
fields HuggingFace templates read (`tool_calls` with arguments as an object, since templates that dump
them would otherwise write a JSON string inside JSON; `tool_call_id` on a tool turn). A template that
does not gets everything as text in the tool format's words: the tools in its system message, past
calls in the assistant's turn, results as user turns.
"""

from __future__ import annotations

import json
from typing import Any

from engines.schemas import Message
from engines.tool_schemas import FunctionTool
from engines.tools.formats import ToolFormat


def template_turns(
    messages: list[Message],
    system: str | None,
    tools: list[FunctionTool] | None,
    tool_format: ToolFormat,
    native: bool,
    content_of: Any,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """The turns for `apply_chat_template`, and its `tools=` argument. `content_of(message)` is a turn's
    content as the template takes it (text, or parts with media placeholders)."""
    turns: list[dict[str, Any]] = [{"role": "system", "content": system}] if system is not None else []
    for i, message in enumerate(messages):
        if native:
            turns.append(_native_turn(message, tool_format, content_of))
        elif message.role == "tool" and i > 0 and messages[i - 1].role == "tool":
            # Results of parallel calls, written as text: one user turn, since templates that do not render
            # tools often insist that user and assistant alternate (Gemma's).
            result = tool_format.result_text(message.text())
            turns[-1] = {**turns[-1], "content": f"{turns[-1]['content']}\n{result}"}
        else:
            turns.append(_text_turn(message, tool_format, content_of))
    if native or not tools:
        return turns, [tool.as_template_tool() for tool in tools] if native and tools else None
    prompt = tool_format.prompt(tools)
    if turns and turns[0]["role"] == "system":
        turns[0] = {**turns[0], "content": f"{turns[0]['content']}\n\n{prompt}" if turns[0]["content"] else prompt}
    else:
        turns.insert(0, {"role": "system", "content": prompt})
    return turns, None


def _native_turn(message: Message, tool_format: ToolFormat, content_of: Any) -> dict[str, Any]:
    turn: dict[str, Any] = named_turn(message, content_of(message))
    call_id = tool_format.template_call_id
    if message.tool_calls:
        turn["tool_calls"] = [
            {
                "id": call_id(call.id),
                "type": "function",
                "function": {"name": call.name, "arguments": _loaded(call.arguments)},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        turn["tool_call_id"] = call_id(message.tool_call_id)
    return turn


def _text_turn(message: Message, tool_format: ToolFormat, content_of: Any) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "user", "content": tool_format.result_text(message.text())}
    content = content_of(message)
    if message.tool_calls:
        calls = tool_format.calls_text(message.tool_calls)
        content = f"{content}\n{calls}" if content else calls
    return named_turn(message, content)


def named_turn(message: Message, content: Any) -> dict[str, Any]:
    """A turn for the template; `name` only where given (templates test `message.name is defined`)."""
    turn: dict[str, Any] = {"role": message.role, "content": content}
    if message.name is not None:
        turn["name"] = message.name
    return turn


def _loaded(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except json.JSONDecodeError:
        return arguments  # what the model wrote, as it wrote it
