"""LLaMA-Factory's `generated_predictions.jsonl` line from a batch line and its OpenAI output line."""

from __future__ import annotations

from typing import Any

from batch.lines import BatchLine
from engines.schemas import Message


def prediction(line: BatchLine, output: dict[str, Any]) -> dict[str, Any]:
    """LLaMA-Factory's generated_predictions.jsonl line. Its `prompt` is the template-rendered text; here it is
    the example's last user turn, since the template lives with the model on the worker."""
    body = output["response"]["body"]
    if "choices" not in body:
        predict = body["scores"][0]
    elif line.prompt is not None:  # a completion's text
        predict = body["choices"][0]["text"]
    else:
        predict = body["choices"][0]["message"]["content"]
    prompt = line.prompt if line.prompt is not None else _prompt_text(line.messages or (line.conversations or [[]])[0])
    return {"prompt": prompt, "predict": predict, "label": line.label or ""}


def _prompt_text(messages: list[Message]) -> str:
    users = [message.content for message in messages if message.role == "user" and isinstance(message.content, str)]
    return users[-1] if users else ""
