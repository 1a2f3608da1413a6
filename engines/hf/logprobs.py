"""Log probabilities of the HF engine's chosen tokens, from the model's raw logits (engines/logprobs.py)."""

from __future__ import annotations

from typing import Any

import torch

from engines.logprobs import TokenLogprob, TopLogprob, finite


class TokenTexts:
    """Each token id's text, decoded once (logprobs name tokens by their text, OpenAI's way)."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._texts: dict[int, str] = {}

    def __call__(self, token_id: int) -> str:
        text = self._texts.get(token_id)
        if text is None:
            text = self._texts[token_id] = self._tokenizer.decode([token_id])
        return text


def token_logprobs(raw_logits: torch.Tensor, chosen: torch.Tensor, top: int, texts: TokenTexts) -> list[TokenLogprob]:
    """One `TokenLogprob` per row: the chosen token's log probability and the `top` likeliest."""
    logprobs = torch.log_softmax(raw_logits.float(), dim=-1)
    chosen_logprobs = logprobs.gather(1, chosen[:, None]).squeeze(1).tolist()
    top_values, top_ids = logprobs.topk(top, dim=-1) if top else (None, None)
    made = []
    for row, (token_id, logprob) in enumerate(zip(chosen.tolist(), chosen_logprobs, strict=True)):
        alternatives = []
        if top:
            for value, alternative in zip(top_values[row].tolist(), top_ids[row].tolist(), strict=True):
                alternatives.append(TopLogprob(token=texts(alternative), token_id=alternative, logprob=finite(value)))
        made.append(
            TokenLogprob(token=texts(token_id), token_id=token_id, logprob=finite(logprob), top_logprobs=alternatives)
        )
    return made
