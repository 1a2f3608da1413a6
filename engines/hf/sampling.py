"""Next-token choice for the rows of one request, inside a mixed batch."""

from __future__ import annotations

import torch
from transformers.generation.logits_process import (
    LogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from engines.params import ResolvedParams


class RequestSampler:
    """The logits processors of `generate()` for one request, plus its own random generator.

    Each request keeps its own generator so that a seed reproduces the same answer whatever other
    requests happen to share the batch.
    """

    def __init__(self, params: ResolvedParams, device: torch.device) -> None:
        self.do_sample = params.do_sample
        # generate() order: processors (repetition penalty) before warpers (temperature, top-k, top-p).
        self._processors: list[LogitsProcessor] = []
        if params.repetition_penalty != 1.0:
            self._processors.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
        if params.do_sample:
            if params.temperature != 1.0:
                self._processors.append(TemperatureLogitsWarper(params.temperature))
            if params.top_k > 0:
                self._processors.append(TopKLogitsWarper(params.top_k))
            if params.top_p < 1.0:
                self._processors.append(TopPLogitsWarper(params.top_p))
        self.needs_history = params.repetition_penalty != 1.0
        self._generator = None
        if params.seed is not None:
            self._generator = torch.Generator(device=device).manual_seed(params.seed)

    @property
    def is_plain_greedy(self) -> bool:
        return not self.do_sample and not self._processors

    def __call__(self, logits: torch.Tensor, history: torch.Tensor | None) -> torch.Tensor:
        """logits: [rows, vocab] float; history: [rows, tokens so far] when `needs_history`."""
        for processor in self._processors:
            logits = processor(history, logits)
        if not self.do_sample:
            return logits.argmax(dim=-1)
        probs = torch.softmax(logits, dim=-1)
        return torch.multinomial(probs, num_samples=1, generator=self._generator).squeeze(1)
