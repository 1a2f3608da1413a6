"""inferq's answers in OpenAI's shapes: tool calls, log probabilities (chat's and completions'), usage."""

from __future__ import annotations

from typing import Any

from engines.logprobs import TokenLogprob
from engines.tool_schemas import ToolCall
from tasks.schemas import JobRecord, ToolCallDelta


def token_bytes(token: str) -> list[int]:
    return list(token.encode("utf-8"))


def chat_logprobs(logprobs: list[TokenLogprob] | None) -> dict[str, Any] | None:
    """`choices[i].logprobs` of a chat completion (and of a chunk, for its tokens)."""
    if logprobs is None:
        return None
    return {"content": [_chat_token(entry) for entry in logprobs], "refusal": None}


def _chat_token(entry: TokenLogprob) -> dict[str, Any]:
    return {
        "token": entry.token,
        "logprob": entry.logprob,
        "bytes": token_bytes(entry.token),
        "top_logprobs": [
            {"token": alt.token, "logprob": alt.logprob, "bytes": token_bytes(alt.token)} for alt in entry.top_logprobs
        ],
    }


def responses_logprobs(logprobs: list[TokenLogprob] | None) -> list[dict[str, Any]]:
    """An output_text part's `logprobs` (the Responses API's shape: chat's, per token)."""
    return [_chat_token(entry) for entry in logprobs or ()]


def completion_logprobs(logprobs: list[TokenLogprob] | None, text_start: int = 0) -> dict[str, Any] | None:
    """`choices[i].logprobs` of a (legacy) completion: parallel lists, and each token's offset in the text."""
    if logprobs is None:
        return None
    offsets, position = [], text_start
    for entry in logprobs:
        offsets.append(position)
        position += len(entry.token)
    return {
        "tokens": [entry.token for entry in logprobs],
        "token_logprobs": [entry.logprob for entry in logprobs],
        "top_logprobs": [{alt.token: alt.logprob for alt in entry.top_logprobs} for entry in logprobs],
        "text_offset": offsets,
    }


def chat_tool_calls(calls: list[ToolCall] | None) -> list[dict[str, Any]] | None:
    if not calls:
        return None
    return [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls]


def chat_tool_call_deltas(deltas: list[ToolCallDelta]) -> list[dict[str, Any]]:
    """A chunk's `delta.tool_calls`: a call's first piece carries its id, type and name; later ones, arguments."""
    shaped = []
    for delta in deltas:
        piece: dict[str, Any] = {"index": delta.index}
        function: dict[str, Any] = {}
        if delta.id is not None:
            piece.update(id=delta.id, type="function")
            function["name"] = delta.name
        function["arguments"] = delta.arguments
        piece["function"] = function
        shaped.append(piece)
    return shaped


def usage(record: JobRecord) -> dict[str, int] | None:
    if record.usage is None:
        return None
    return {
        "prompt_tokens": record.usage.prompt_tokens,
        "completion_tokens": record.usage.completion_tokens,
        "total_tokens": record.usage.total_tokens,
    }
