"""Tool formats: how a model family writes a call, and how tools are put in front of a model whose chat
template does not render them itself.

A template that renders tools (it reads the `tools` variable: Qwen, Llama 3.1, Mistral, Hermes...) gets
them through `apply_chat_template(tools=...)`, and its family is read off the template: `<tool_call>` is
Hermes/Qwen, `[TOOL_CALLS]` Mistral, `<|python_tag|>` Llama 3.x. A template that does not (SmolLM2's, the
echo engine's) gets the tools written into its system message in the chosen format's words, Hermes' by
default (the prompt LLaMA-Factory writes for Qwen), and past calls and tool results written as text.
A worker overrides the choice with `engine_args.tool_format`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from engines.tool_schemas import FunctionTool, ToolCall
from engines.tools.parsers import JsonCallsParser, MistralParser, ReActParser, TaggedParser, ToolCallParser

ToolFormatName = Literal["hermes", "llama3_json", "mistral", "react"]

_HERMES_PROMPT = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>{tools}\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{{"name": <function-name>, "arguments": <args-json-object>}}\n'
    "</tool_call>"
)
_LLAMA3_PROMPT = (
    "You have access to the following functions. To call a function, please respond with JSON for a function "
    'call. Respond in the format {{"name": function name, "parameters": dictionary of argument name and its '
    "value}}. Do not use variables.\n\n{tools}"
)
_MISTRAL_PROMPT = "[AVAILABLE_TOOLS] {tools}[/AVAILABLE_TOOLS]"
_REACT_PROMPT = (  # LLaMA-Factory's default tool prompt
    "You have access to the following tools:\n{tools}Use the following format if using a tool:\n```\n"
    "Action: tool name (one of [{names}])\nAction Input: the input to the tool, in a JSON format representing "
    'the kwargs (e.g. ```{{"input": "hello world", "num_beams": 5}}```)\n```\n'
)


@dataclass(frozen=True)
class ToolFormat:
    name: ToolFormatName
    parser: Callable[[], ToolCallParser]
    prompt: Callable[[list[FunctionTool]], str]  # the tools, for a system message
    calls_text: Callable[[list[ToolCall]], str]  # an assistant turn's calls, as this family writes them
    result_text: Callable[[str], str]  # a tool's result, as a user turn
    # The call marker is a special token (Mistral's `[TOOL_CALLS]`): decoding must keep special tokens, or
    # the parser never sees the marker (vLLM's Mistral parser turns skip_special_tokens off for the same).
    marker_is_special: bool = False
    # A call's id as this family's own template takes it back (in an assistant turn and a tool turn alike).
    template_call_id: Callable[[str], str] = str
    # The tags around a call, special tokens in some checkpoints only (Hermes 2 Pro's and Hermes 3's
    # `<tool_call>`, not Qwen's): where they are, decoding must keep them too (vLLM's Hermes parser does).
    markers: tuple[str, ...] = ()

    def needs_special_tokens(self, tokenizer: Any) -> bool:
        """Whether a request offered tools must decode with special tokens kept, for the parser to see calls."""
        if self.marker_is_special:
            return True
        added = getattr(tokenizer, "added_tokens_decoder", None) or {}
        special = {token.content for token in added.values() if getattr(token, "special", False)}
        return any(marker in special for marker in self.markers)


def _json_tools(tools: list[FunctionTool], separator: str = "\n") -> str:
    return "".join(separator + json.dumps(tool.as_template_tool(), ensure_ascii=False) for tool in tools)


def _nine_alphanumerics(call_id: str) -> str:
    """Mistral's templates refuse any call id but nine letters and digits; OpenAI's and inferq's are longer.
    The last nine of its letters and digits (as vLLM keeps), zero-padded: the same id maps the same way in
    the assistant's call and in the tool's answer to it."""
    return re.sub(r"[^A-Za-z0-9]", "", call_id)[-9:].rjust(9, "0")


def _react_tools(tools: list[FunctionTool]) -> str:
    return "".join(
        f"> Tool Name: {tool.name}\nTool Description: {tool.description or ''}\nTool Args: "
        f"{json.dumps(tool.parameters or {}, ensure_ascii=False)}\n"
        for tool in tools
    )


FORMATS: dict[ToolFormatName, ToolFormat] = {
    "hermes": ToolFormat(
        "hermes",
        TaggedParser,
        lambda tools: _HERMES_PROMPT.format(tools=_json_tools(tools)),
        lambda calls: "\n".join(
            f'<tool_call>\n{{"name": {json.dumps(call.name)}, "arguments": {call.arguments}}}\n</tool_call>'
            for call in calls
        ),
        lambda result: f"<tool_response>\n{result}\n</tool_response>",
        markers=("<tool_call>", "</tool_call>"),
    ),
    "llama3_json": ToolFormat(
        "llama3_json",
        lambda: JsonCallsParser(optional_prefix="<|python_tag|>"),
        lambda tools: _LLAMA3_PROMPT.format(tools=_json_tools(tools, "\n\n")),
        lambda calls: "; ".join(
            f'{{"name": {json.dumps(call.name)}, "parameters": {call.arguments}}}' for call in calls
        ),
        lambda result: result,
    ),
    "mistral": ToolFormat(
        "mistral",
        MistralParser,
        lambda tools: _MISTRAL_PROMPT.format(tools=json.dumps([tool.as_template_tool() for tool in tools])),
        lambda calls: (
            "[TOOL_CALLS] ["
            + ", ".join(f'{{"name": {json.dumps(call.name)}, "arguments": {call.arguments}}}' for call in calls)
            + "]"
        ),
        lambda result: f"[TOOL_RESULTS] {result}[/TOOL_RESULTS]",
        marker_is_special=True,
        template_call_id=lambda call_id: _nine_alphanumerics(call_id),
    ),
    "react": ToolFormat(
        "react",
        ReActParser,
        lambda tools: _REACT_PROMPT.format(tools=_react_tools(tools), names=", ".join(tool.name for tool in tools)),
        lambda calls: "\n".join(f"Action: {call.name}\nAction Input: {call.arguments}" for call in calls),
        lambda result: f"Observation: {result}",
    ),
}


def renders_tools(chat_template: str) -> bool:
    """Whether the template itself writes the `tools` it is given (else inferq writes them in)."""
    return "tools" in chat_template


# Marks of templates that prompt for calls in a syntax no parser here reads (vLLM needs a --tool-call-parser of
# its own for each): read as Hermes, every call would come back as answer text. Qwen3-Coder's XML, DeepSeek's,
# gpt-oss's, GLM-4.5's and Kimi K2's.
UNREADABLE_SYNTAXES = (
    "<function=",
    "tool\u2581calls\u2581begin",
    "<|call|>",
    "<arg_key>",
    "<|tool_calls_section_begin|>",
)


def detect_format(chat_template: str) -> ToolFormatName | None:
    """The family a template's own tool rendering belongs to; Hermes for a template without one; None for a
    syntax inferq cannot read (tools are then refused, unless the worker names a format)."""
    if any(mark in chat_template for mark in UNREADABLE_SYNTAXES):
        return None
    if "[TOOL_CALLS]" in chat_template:
        return "mistral"
    if "<|python_tag|>" in chat_template or "ipython" in chat_template:
        return "llama3_json"
    return "hermes"
