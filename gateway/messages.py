"""OpenAI's message shapes (Chat Completions and Responses) to inferq `Message`s. Text only."""

from __future__ import annotations

from typing import Any

from engines.errors import InvalidRequest
from engines.schemas import Message

# OpenAI's newer models take system instructions as "developer"; inferq's templates know "system".
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
CHAT_TEXT_PARTS = frozenset({"text"})
RESPONSES_TEXT_PARTS = frozenset({"input_text", "output_text"})


def chat_messages(raw: list[dict[str, Any]]) -> list[Message]:
    """`messages` of a chat completion request; errors name the field, e.g. `messages.1.content.0`."""
    return [_message(item, f"messages.{i}", CHAT_TEXT_PARTS) for i, item in enumerate(raw)]


def score_conversations(raw: list[list[dict[str, Any]]]) -> list[list[Message]]:
    """`conversations` of a score request: each a chat, the answer last, in Chat Completions' shapes."""
    return [
        [_message(item, f"conversations.{i}.{j}", CHAT_TEXT_PARTS) for j, item in enumerate(chat)]
        for i, chat in enumerate(raw)
    ]


def response_input(raw: str | list[dict[str, Any]]) -> list[Message]:
    """`input` of a Responses request: a string is one user turn."""
    if isinstance(raw, str):
        return [Message(role="user", content=raw)]
    messages = []
    for i, item in enumerate(raw):
        if item.get("type", "message") != "message":
            raise InvalidRequest(f"only message items are served, not {item.get('type')!r}", field=f"input.{i}.type")
        messages.append(_message({k: v for k, v in item.items() if k != "type"}, f"input.{i}", RESPONSES_TEXT_PARTS))
    return messages


def _message(item: dict[str, Any], field: str, text_parts: frozenset[str]) -> Message:
    unknown = sorted(set(item) - {"role", "content"})
    if unknown:
        raise InvalidRequest("inferq's engines cannot honour this message field", field=f"{field}.{unknown[0]}")
    role = item.get("role")
    if role not in _ROLES:
        raise InvalidRequest(f"must be one of {', '.join(_ROLES)}", field=f"{field}.role")
    return Message(role=_ROLES[role], content=_text(item.get("content"), f"{field}.content", text_parts))


def _text(content: Any, field: str, text_parts: frozenset[str]) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest("must be a string or a list of text parts", field=field)
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in text_parts or not isinstance(part.get("text"), str):
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise InvalidRequest(f"only text parts are served here, not {kind!r}", field=f"{field}.{j}")
        texts.append(part["text"])
    return "".join(texts)
