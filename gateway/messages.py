"""OpenAI's message shapes (Chat Completions and Responses) to inferq `Message`s.

Text, images (`image_url` parts, Responses' `input_image`), an assistant's tool calls and the tools'
results. Images are data URLs, or http(s) URLs when the operator allows them (`media_urls`): the worker
fetches them, never a local path. Errors name the field as the client sent it (`messages.1.content.0`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from engines.errors import InvalidRequest
from engines.schemas import PARTICIPANT_NAME, ImagePart, Message, TextPart
from engines.tool_schemas import ToolCall

# OpenAI's newer models take system instructions as "developer"; inferq's templates know "system".
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}
CHAT_TEXT_PARTS = frozenset({"text"})
RESPONSES_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})
_CHAT_FIELDS = {"role", "content", "name", "tool_calls", "tool_call_id"}
# An answer sent back as history carries its thoughts (the field the gateway writes, vLLM's and DeepSeek's):
# dropped, as chat templates drop a past answer's thoughts.
_PAST_ANSWER_FIELDS = {"reasoning_content", "reasoning"}


def chat_messages(raw: list[dict[str, Any]], remote_images: bool) -> list[Message]:
    """`messages` of a chat completion request."""
    return [_chat_message(item, f"messages.{i}", remote_images) for i, item in enumerate(raw)]


def score_conversations(raw: list[list[dict[str, Any]]]) -> list[list[Message]]:
    """`conversations` of a score request: each a chat, the answer last, text only."""
    return [
        [
            _chat_message(item, f"conversations.{i}.{j}", remote_images=False, images=False)
            for j, item in enumerate(chat)
        ]
        for i, chat in enumerate(raw)
    ]


def response_input(raw: str | list[dict[str, Any]], remote_images: bool) -> list[Message]:
    """`input` of a Responses request: a string is one user turn; items are messages, an assistant's
    `function_call`s (consecutive ones make one turn) and `function_call_output`s."""
    if isinstance(raw, str):
        return [Message(role="user", content=raw)]
    messages: list[Message] = []
    for i, item in enumerate(raw):
        field = f"input.{i}"
        if not isinstance(item, dict):
            raise InvalidRequest("must be an input item (an object)", field=field)
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_responses_message(item, field, remote_images))
        elif kind == "function_call":
            call = _function_call(item, field)
            if (
                messages
                and messages[-1].role == "assistant"
                and messages[-1].tool_calls
                and messages[-1].content is None
            ):
                messages[-1] = messages[-1].model_copy(update={"tool_calls": [*messages[-1].tool_calls, call]})
            else:
                messages.append(Message(role="assistant", content=None, tool_calls=[call]))
        elif kind == "function_call_output":
            messages.append(_function_call_output(item, field))
        elif kind == "reasoning":
            continue  # a past answer's thoughts: chat templates drop them from the history anyway
        else:
            raise InvalidRequest(f"inferq serves no {kind!r} input items", field=f"{field}.type")
    return messages


def _chat_message(item: Any, field: str, remote_images: bool, images: bool = True) -> Message:
    if not isinstance(item, dict):
        raise InvalidRequest("must be a message object", field=field)
    role = _role(item, field)
    unknown = sorted(set(item) - _CHAT_FIELDS - (_PAST_ANSWER_FIELDS if role == "assistant" else set()))
    if unknown:
        raise InvalidRequest("inferq's engines cannot honour this message field", field=f"{field}.{unknown[0]}")
    calls = None
    if item.get("tool_calls") is not None:
        if role != "assistant":
            raise InvalidRequest("only an assistant message carries tool calls", field=f"{field}.tool_calls")
        calls = [
            _chat_tool_call(call, f"{field}.tool_calls.{j}") for j, call in enumerate(_list(item, "tool_calls", field))
        ]
    tool_call_id = item.get("tool_call_id")
    if role == "tool" and not isinstance(tool_call_id, str):
        raise InvalidRequest("a tool message answers a call: give its id", field=f"{field}.tool_call_id")
    if role != "tool" and tool_call_id is not None:
        raise InvalidRequest("only a tool message answers a call", field=f"{field}.tool_call_id")
    content = item.get("content")
    if content is None and not calls:
        raise InvalidRequest("must be a string or a list of parts", field=f"{field}.content")
    parts = None if content is None else _chat_content(content, f"{field}.content", remote_images, images)
    name = item.get("name")
    if name is not None and not (isinstance(name, str) and re.fullmatch(PARTICIPANT_NAME, name)):
        raise InvalidRequest("a name is 1 to 64 letters, digits, _ or -", field=f"{field}.name")
    return _message(role, parts, calls, tool_call_id, field, name)


def _chat_content(content: Any, field: str, remote_images: bool, images: bool) -> str | list[TextPart | ImagePart]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest("must be a string or a list of parts", field=field)
    parts: list[TextPart | ImagePart] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append(TextPart(text=part["text"]))
        elif kind == "image_url" and images:
            url = part.get("image_url")
            url = url.get("url") if isinstance(url, dict) else url
            parts.append(ImagePart(image=checked_image_url(url, f"{field}.{j}.image_url", remote_images)))
        else:
            named = kind if kind is not None else type(part).__name__
            raise InvalidRequest(f"inferq serves text and image_url parts, not {named!r}", field=f"{field}.{j}")
    return _joined(parts)


def _responses_message(item: dict[str, Any], field: str, remote_images: bool) -> Message:
    unknown = sorted(set(item) - {"type", "role", "content", "id", "status", "phase"})
    if unknown:
        raise InvalidRequest("inferq's engines cannot honour this item field", field=f"{field}.{unknown[0]}")
    role = _role(item, field)
    if role == "tool":
        raise InvalidRequest("tool results are function_call_output items", field=f"{field}.role")
    content = item.get("content")
    if isinstance(content, str):
        return _message(role, content, None, None, field)
    if not isinstance(content, list):
        raise InvalidRequest("must be a string or a list of content parts", field=f"{field}.content")
    parts: list[TextPart | ImagePart] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        where = f"{field}.content.{j}"
        if kind in RESPONSES_TEXT_PARTS and isinstance(part.get("text"), str):
            parts.append(TextPart(text=part["text"]))
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            parts.append(TextPart(text=part["refusal"]))
        elif kind == "input_image" and role == "user":
            if part.get("file_id") is not None:
                raise InvalidRequest("inferq keeps no files for images: send an image_url", field=f"{where}.file_id")
            parts.append(ImagePart(image=checked_image_url(part.get("image_url"), f"{where}.image_url", remote_images)))
        else:
            named = kind if kind is not None else type(part).__name__
            raise InvalidRequest(f"inferq serves text and input_image parts, not {named!r}", field=where)
    return _message(role, _joined(parts), None, None, field)


def _function_call(item: dict[str, Any], field: str) -> ToolCall:
    for key in ("call_id", "name", "arguments"):
        if not isinstance(item.get(key), str):
            raise InvalidRequest("must be a string", field=f"{field}.{key}")
    return _tool_call(item["call_id"], item["name"], item["arguments"], f"{field}.call_id")


def _function_call_output(item: dict[str, Any], field: str) -> Message:
    if not isinstance(item.get("call_id"), str):
        raise InvalidRequest("must be the call's id", field=f"{field}.call_id")
    output = item.get("output")
    if isinstance(output, list):  # parts: their text
        if not all(isinstance(part, dict) and isinstance(part.get("text"), str) for part in output):
            raise InvalidRequest("inferq serves text results", field=f"{field}.output")
        output = "".join(part["text"] for part in output)
    if not isinstance(output, str):
        raise InvalidRequest("must be a string", field=f"{field}.output")
    return Message(role="tool", content=output, tool_call_id=item["call_id"])


def _chat_tool_call(call: Any, field: str) -> ToolCall:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(call, dict) or call.get("type", "function") != "function" or not isinstance(function, dict):
        raise InvalidRequest("must be a function call {id, type, function: {name, arguments}}", field=field)
    if not isinstance(call.get("id"), str) or not isinstance(function.get("name"), str):
        raise InvalidRequest("needs its id and its function's name", field=field)
    arguments = function.get("arguments", "{}")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return _tool_call(call["id"], function["name"], arguments, f"{field}.id")


def _tool_call(call_id: str, name: str, arguments: str, id_field: str) -> ToolCall:
    try:
        return ToolCall(id=call_id, name=name, arguments=arguments)
    except ValueError:  # the only limit a string can break: the id's length
        raise InvalidRequest("a call's id has 1 to 128 characters", field=id_field) from None


def checked_image_url(url: Any, field: str, remote_images: bool) -> str:
    """A data URL always; http(s) only where the operator allows the workers to fetch; nothing else."""
    if not isinstance(url, str) or not url:
        raise InvalidRequest("must be a data: URL or an http(s) URL", field=field)
    if url.startswith("data:image/"):
        return url
    if url.startswith(("http://", "https://")):
        if remote_images:
            return url
        raise InvalidRequest(
            "image URLs are off on this gateway (INFERQ_MEDIA_REMOTE_URLS): send a data URL", field=field
        )
    raise InvalidRequest("must be a data:image/... URL (or http(s) where allowed)", field=field)


def _role(item: dict[str, Any], field: str) -> str:
    role = item.get("role")
    if role not in _ROLES:
        raise InvalidRequest(f"must be one of {', '.join(_ROLES)}", field=f"{field}.role")
    return _ROLES[role]


def _list(item: dict[str, Any], key: str, field: str) -> list[Any]:
    value = item[key]
    if not isinstance(value, list):
        raise InvalidRequest("must be a list", field=f"{field}.{key}")
    return value


def _joined(parts: list[TextPart | ImagePart]) -> str | list[TextPart | ImagePart]:
    """Text-only content as one string (templates see a plain message); with images, the parts in order."""
    if all(isinstance(part, TextPart) for part in parts):
        return "".join(part.text for part in parts)
    return parts


def _message(
    role: str, content: Any, calls: list[ToolCall] | None, tool_call_id: str | None, field: str, name: str | None = None
) -> Message:
    try:
        return Message(role=role, name=name, content=content, tool_calls=calls, tool_call_id=tool_call_id)
    except ValueError as exc:  # the model's own checks (a tool message with no content, say)
        raise InvalidRequest(str(exc).splitlines()[-1].strip(), field=field) from None
