"""LLaMA-Factory's `generated_predictions.jsonl` line from a batch line and its OpenAI output line."""

from __future__ import annotations

from typing import Any

from batch.lines import BatchLine
from engines.schemas import Message


def prediction(line: BatchLine, output: dict[str, Any]) -> dict[str, Any]:
    """LLaMA-Factory's generated_predictions.jsonl line. Its `prompt` is the template-rendered text; here it is
    the example's last user turn, since the template lives with the model on the worker."""
    body = output["response"]["body"]
    predict = body["choices"][0]["message"]["content"] if "choices" in body else body["scores"][0]
    return {"prompt": _prompt_text(line.messages or (line.conversations or [[]])[0]), "predict": predict,
            "label": line.label or ""}  # fmt: skip


def _prompt_text(messages: list[Message]) -> str:
    users = [message.content for message in messages if message.role == "user" and isinstance(message.content, str)]
    return users[-1] if users else ""
