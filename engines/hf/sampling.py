"""Next-token choice for the rows of one request, inside a mixed batch.

The order is vLLM's (which extends generate()'s): logit bias, the end-of-turn tokens held back until
`min_tokens`, the repetition penalty, OpenAI's presence and frequency penalties (over the generated tokens
only), then temperature, top-k, top-p and min-p, then the draw. A grammar's mask (engines/hf/grammar.py)
comes before all of them, per row, in the batch.
"""

from __future__ import annotations

import torch
from transformers.generation.logits_process import (
    LogitsProcessor,
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from engines.params import ResolvedParams


class RequestSampler:
    """The logits processors of one request, plus its own random generator.

    Each request keeps its own generator so that a seed reproduces the same answer whatever other
    requests happen to share the batch.
    """

    def __init__(self, params: ResolvedParams, device: torch.device, prompt_length: int) -> None:
        self.do_sample = params.do_sample
        self._prompt_length = prompt_length
        self._bias: tuple[torch.Tensor, torch.Tensor] | None = None
        if params.logit_bias:
            ids, values = zip(*params.logit_bias, strict=True)
            self._bias = torch.tensor(ids, device=device), torch.tensor(values, device=device)
        self._min_tokens = params.min_tokens
        self._stop_ids = torch.tensor(params.stop_token_ids, device=device, dtype=torch.long)
        self._repetition = (
            RepetitionPenaltyLogitsProcessor(params.repetition_penalty) if params.repetition_penalty != 1.0 else None
        )
        self._presence, self._frequency = params.presence_penalty, params.frequency_penalty
        self._warpers: list[LogitsProcessor] = []
        if params.do_sample:
            if params.temperature != 1.0:
                self._warpers.append(TemperatureLogitsWarper(params.temperature))
            if params.top_k > 0:
                self._warpers.append(TopKLogitsWarper(params.top_k))
            if params.top_p < 1.0:
                self._warpers.append(TopPLogitsWarper(params.top_p))
            if params.min_p > 0.0:
                self._warpers.append(MinPLogitsWarper(params.min_p))
        self.needs_history = self._repetition is not None or params.penalises_occurrences
        self._generator = None
        if params.seed is not None:
            self._generator = torch.Generator(device=device).manual_seed(params.seed)

    @property
    def is_plain_greedy(self) -> bool:
        """Nothing to do but take the likeliest token (the batch does that for all such rows at once)."""
        return not (self.do_sample or self._bias is not None or self._min_tokens or self.needs_history or self._warpers)

    def __call__(self, logits: torch.Tensor, history: torch.Tensor | None, generated: int) -> torch.Tensor:
        """logits: [rows, vocab] float; history: [rows, prompt + generated tokens] when `needs_history`;
        generated: how many tokens the rows have generated so far."""
        if self._bias is not None:
            logits[:, self._bias[0]] += self._bias[1]
        if generated < self._min_tokens and len(self._stop_ids):
            logits[:, self._stop_ids] = float("-inf")
        if self._repetition is not None:
            logits = self._repetition(history, logits)
        if self._presence or self._frequency:
            logits = self._occurrence_penalties(logits, history[:, self._prompt_length :])
        for warper in self._warpers:
            logits = warper(history, logits)
        if not self.do_sample:
            return logits.argmax(dim=-1)
        probs = torch.softmax(logits, dim=-1)
        return torch.multinomial(probs, num_samples=1, generator=self._generator).squeeze(1)

    def _occurrence_penalties(self, logits: torch.Tensor, generated_ids: torch.Tensor) -> torch.Tensor:
        """OpenAI's: logit -= count * frequency_penalty + (count > 0) * presence_penalty."""
        counts = torch.zeros_like(logits)
        if generated_ids.shape[1]:
            counts.scatter_add_(1, generated_ids, torch.ones_like(generated_ids, dtype=logits.dtype))
        return logits - counts * self._frequency - (counts > 0).to(logits.dtype) * self._presence
