"""LLaMA-Factory's `generated_predictions.jsonl` line from a batch line and its OpenAI output line."""

from __future__ import annotations

from typing import Any

from batch.lines import BatchLine
from engines.schemas import Message


def prediction(line: BatchLine, output: dict[str, Any]) -> dict[str, Any]:
    """LLaMA-Factory's generated_predictions.jsonl line. Its `prompt` is the template-rendered text; here it is
    the example's last user turn, since the template lives with the model on the worker."""
    body = output["response"]["body"]
    if line.url == "/v1/score":
        predict, prompt = body["scores"][0], _prompt_text((line.conversations or [[]])[0])
    elif line.url == "/v1/completions":
        predict, prompt = body["choices"][0]["text"], line.prompt
    else:
        predict, prompt = body["choices"][0]["message"]["content"], _prompt_text(line.messages)
    return {"prompt": prompt, "predict": predict, "label": line.label or ""}


def _prompt_text(messages: list[Message]) -> str:
    users = [message.text() for message in messages if message.role == "user"]  # an image's turn: its text
    return users[-1] if users else ""
