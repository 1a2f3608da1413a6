"""Reward scores: the score head applied to the hidden state of each text's last real token."""

from __future__ import annotations

from typing import Any

import torch


class Scorer:
    """Scores texts in padded micro-batches, shortest first, so a batch pads as little as possible.

    The last real token is found from the attention mask, never from `pad_token_id`: many chat
    tokenizers pad with their end-of-turn token, which is also the last real token of a templated
    text, so the classifier's own pad lookup would pick the wrong position.
    """

    def __init__(self, backbone: Any, head: torch.nn.Module, tokenizer: Any, batch_size: int, max_length: int) -> None:
        self._backbone = backbone
        self._head = head
        self._tokenizer = tokenizer
        self._batch_size = batch_size
        self._max_length = max_length

    @torch.inference_mode()
    def __call__(self, texts: list[str], max_length: int | None) -> list[float]:
        scores = [0.0] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self._batch_size):
            chunk = order[start : start + self._batch_size]
            for i, score in zip(chunk, self._score_batch([texts[i] for i in chunk], max_length), strict=True):
                scores[i] = score
        return scores

    def _score_batch(self, texts: list[str], max_length: int | None) -> list[float]:
        encoded = self._tokenizer(
            texts,
            padding=True,
            padding_side="right",
            truncation=True,
            max_length=min(max_length or self._max_length, self._max_length),
            add_special_tokens=False,  # scored texts arrive already templated, as in LLaMA-Factory
            return_tensors="pt",
        ).to(self._backbone.device)
        hidden = self._backbone(**encoded, use_cache=False).last_hidden_state
        last_real = encoded["attention_mask"].sum(dim=-1) - 1
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        return self._head(hidden[rows, last_real]).squeeze(-1).float().tolist()
