"""One line of a batch: what to submit, and how its answer is shaped; or why the line cannot run."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from engines.schemas import Message


def json_lines(text: str) -> list[str]:
    """A JSON-lines text's lines, split at "\n" alone: `str.splitlines` also splits at U+2028, U+2029, U+0085
    and other separators, which a JSON string may hold raw (an answer, a prompt)."""
    return text.split("\n")


class BatchLine(BaseModel):
    """A chat (`messages`), a completion (a raw `prompt`) or a scoring (`texts` or `conversations`) request,
    ready for the client."""

    model_config = ConfigDict(frozen=True)

    custom_id: str
    index: int  # its place in the input, which the predictions file keeps
    url: Literal["/v1/chat/completions", "/v1/completions", "/v1/score"]
    model: str
    messages: list[Message] | None = None
    prompt: str | None = None
    echo: bool = False  # a completion's answer starts with its prompt (OpenAI's `echo`)
    texts: list[str] | None = None
    conversations: list[list[Message]] | None = None
    options: dict[str, Any] = {}
    label: str | None = None  # a dataset's reference answer, for LLaMA-Factory's predictions file


class LineError(BaseModel):
    """A line refused before it ran (bad JSON, a duplicate custom_id, a wrong endpoint, a bad body)."""

    model_config = ConfigDict(frozen=True)

    custom_id: str | None
    index: int
    message: str
    param: str | None = None
