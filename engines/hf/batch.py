"""Rows that decode together: one KV cache, left-padded, that requests join and leave between steps.

This is the batching of TGI's first `CausalLMBatch` (concatenate on join, filter on leave) on
transformers' `DynamicCache`, so a request arriving mid-generation waits one step, not a whole batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from engines.base import ChatRequest
from engines.errors import EngineError
from engines.hf.detokenizer import IncrementalDetokenizer
from engines.hf.errors import request_failure
from engines.hf.grammar import Grammars
from engines.hf.logprobs import TokenTexts, token_logprobs
from engines.hf.preemption import StepPreempted
from engines.hf.sampling import RequestSampler
from engines.logprobs import TokenLogprob
from engines.schemas import Delta, FinishReason
from engines.stopping import StopStringMatcher

# (request_id, what a step made for it): a delta, or the error that ended that request alone.
Output = tuple[str, Delta | EngineError]


@dataclass(eq=False)
class Sequence:
    """One of a request's `n` answers: its tokens, its text so far and whether it has finished."""

    request: ChatRequest
    index: int
    sampler: RequestSampler
    detokenizer: IncrementalDetokenizer
    stop_matcher: StopStringMatcher | None
    token_ids: list[int]  # prompt + generated: the repetition penalty looks at both
    grammar: Any = None  # this row's grammar matcher, when the request constrains its output
    num_generated: int = 0
    finish_reason: FinishReason | None = field(default=None)

    def accept(self, token_id: int) -> Delta:
        """Records one generated token and returns the delta it makes, finishing the sequence if it ends it."""
        params = self.request.params
        self.num_generated += 1
        self.token_ids.append(token_id)
        if self.grammar is not None:
            self.grammar.accept_token(token_id)
        if token_id in params.stop_token_ids and not params.ignore_eos:
            # The end-of-turn token ends the answer but is not part of its text.
            return self._finish("stop", self._drain()[0], (token_id,))
        text = self.detokenizer.add(token_id)
        if self.stop_matcher is not None:
            text, hit = self.stop_matcher.feed(text, can_stop=self.num_generated > params.min_tokens)
            if hit:
                return self._finish("stop", text, (token_id,))
        if self.num_generated >= params.max_new_tokens:
            tail, hit = self._drain()
            return self._finish("stop" if hit else "length", text + tail, (token_id,))
        return Delta(self.index, text, (token_id,))

    def abort(self) -> Delta:
        return self._finish("abort", self._drain()[0], ())

    def fail(self) -> None:
        """Ends the sequence without a delta: its request failed, and its caller gets the error instead."""
        self.finish_reason = "abort"

    def _drain(self) -> tuple[str, bool]:
        """Text still held back once the sequence ends: an unfinished character, a possible stop prefix."""
        text = self.detokenizer.flush()
        if self.stop_matcher is None:
            return text, False
        text, hit = self.stop_matcher.feed(text)
        return (text, True) if hit else (text + self.stop_matcher.flush(), False)

    def _finish(self, reason: FinishReason, text: str, token_ids: tuple[int, ...]) -> Delta:
        self.finish_reason = reason
        return Delta(self.index, text, token_ids, reason)


SequenceFactory = Callable[[ChatRequest, int, RequestSampler], Sequence]


@dataclass(frozen=True)
class StepHelpers:
    """What a step needs besides the model, owned by the engine."""

    pad_token_id: int
    token_texts: TokenTexts
    grammars: Grammars | None  # None without xgrammar: constrained requests were refused when prepared


class DecodeBatch:
    """Rows sharing one forward pass. Padding is on the left, so every row's next token is the last column."""

    def __init__(
        self,
        sequences: list[Sequence],
        cache: DynamicCache,
        attention_mask: torch.Tensor,
        positions: torch.Tensor,
        helpers: StepHelpers,
    ) -> None:
        self.sequences = sequences
        self._helpers = helpers
        self.cache = cache
        self.attention_mask = attention_mask  # [rows, cached tokens], 0 on padding
        self.positions = positions  # [rows], the position id of each row's next input token
        self.next_input: torch.Tensor | None = None  # [rows], the token each row feeds next
        # Joining needs to pad every layer's keys on the left; only plain full-attention layers allow it.
        self.can_merge = all(type(layer) is DynamicLayer for layer in cache.layers)

    @classmethod
    def prefill(
        cls, model, requests: list[ChatRequest], make_sequence: SequenceFactory, helpers: StepHelpers
    ) -> tuple[DecodeBatch, list[Output]]:
        pad_token_id = helpers.pad_token_id
        device = model.device
        longest = max(r.prompt_length for r in requests)
        input_ids = torch.tensor(
            [[pad_token_id] * (longest - r.prompt_length) + r.prompt_ids for r in requests], device=device
        )
        attention_mask = torch.tensor(
            [[0] * (longest - r.prompt_length) + [1] * r.prompt_length for r in requests], device=device
        )
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=model.config)
        # A request with images prefills alone (the stepper sees to it), with what the processor made of them.
        images = {
            name: value.to(device) for name, value in (requests[0].model_inputs or {}).items()
        } if len(requests) == 1 else {}  # fmt: skip
        logits = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
            **images,
        ).logits[:, -1, :]
        # A request with n > 1 runs its prompt once, then copies the cache row n times.
        rows = [i for i, request in enumerate(requests) for _ in range(request.params.n)]
        if len(rows) != len(requests):
            # built on the CPU: a model spread over GPUs (`device_map="auto"`) keeps each layer's cache on its own
            # GPU, and torch indexes a tensor with an index on its device or on the CPU only
            index = torch.tensor(rows)
            cache.batch_select_indices(index)
            index = index.to(device)
            attention_mask, logits = attention_mask[index], logits[index]
        sequences = []
        for request in requests:
            sampler = RequestSampler(request.params, device, request.prompt_length)
            sequences += [make_sequence(request, j, sampler) for j in range(request.params.n)]
        batch = cls(sequences, cache, attention_mask, positions=attention_mask.sum(-1), helpers=helpers)
        return batch, batch._choose_next(logits)

    def decode(self, model) -> list[Output]:
        """One token for every row. A decode stopped between layers (engines/hf/preemption.py) takes back the
        keys its finished layers cached, so that it runs again later as if it never started."""
        cached = self.attention_mask.shape[1]
        attention_mask = F.pad(self.attention_mask, (0, 1), value=1)
        try:
            logits = model(
                input_ids=self.next_input[:, None],
                attention_mask=attention_mask,
                position_ids=self.positions[:, None],
                past_key_values=self.cache,
                use_cache=True,
            ).logits[:, -1, :]
        except StepPreempted:
            for layer in self.cache.layers:
                layer.keys = layer.keys[:, :, :cached]
                layer.values = layer.values[:, :, :cached]
            raise
        self.attention_mask = attention_mask
        self.positions = self.positions + 1
        return self._choose_next(logits)

    def _choose_next(self, logits: torch.Tensor) -> list[Output]:
        """Each request's next tokens, by its own sampler. A request whose sampling or detokenizing fails
        ends with its error and leaves the batch; its batch-mates go on."""
        logits = logits.float()
        wanting_logprobs = [row for row, seq in enumerate(self.sequences) if seq.request.params.logprobs is not None]
        raw = logits[wanting_logprobs] if wanting_logprobs else None  # a copy: what the model said, unmasked
        constrained = [row for row, sequence in enumerate(self.sequences) if sequence.grammar is not None]
        if constrained:
            masked = logits[constrained]
            self._helpers.grammars.mask(masked, [self.sequences[row].grammar for row in constrained])
            logits[constrained] = masked
        next_tokens = logits.argmax(dim=-1)
        rows_by_sampler: dict[int, list[int]] = {}
        for row, sequence in enumerate(self.sequences):
            rows_by_sampler.setdefault(id(sequence.sampler), []).append(row)
        failed: dict[str, EngineError] = {}
        for rows in rows_by_sampler.values():
            sampler = self.sequences[rows[0]].sampler
            if sampler.is_plain_greedy:
                continue
            try:
                history = None
                if sampler.needs_history:
                    # A request's rows started together and step together, so their histories have one length.
                    history = torch.tensor([self.sequences[r].token_ids for r in rows], device=logits.device)
                index = torch.tensor(rows, device=logits.device)
                next_tokens[index] = sampler(logits[index], history, self.sequences[rows[0]].num_generated)
            except Exception as exc:
                failed[self.sequences[rows[0]].request.request_id] = request_failure(exc)
        self.next_input = next_tokens
        logprobs = self._logprobs(raw, wanting_logprobs, next_tokens)
        outputs: list[Output] = []
        for row, (sequence, token) in enumerate(zip(self.sequences, next_tokens.tolist(), strict=True)):
            request_id = sequence.request.request_id
            if request_id not in failed:
                try:
                    delta = sequence.accept(token)
                    if row in logprobs:
                        delta = dataclasses.replace(delta, logprobs=(logprobs[row],))
                    outputs.append((request_id, delta))
                except Exception as exc:
                    failed[request_id] = request_failure(exc)
        if not failed:
            return outputs
        for sequence in self.sequences:
            if sequence.request.request_id in failed:
                sequence.fail()
        return [output for output in outputs if output[0] not in failed] + list(failed.items())

    def _logprobs(self, raw: torch.Tensor | None, rows: list[int], chosen: torch.Tensor) -> dict[int, TokenLogprob]:
        if raw is None:
            return {}
        made: dict[int, TokenLogprob] = {}
        for top in {self.sequences[row].request.params.logprobs for row in rows}:  # rows asking for as many
            group = [i for i, row in enumerate(rows) if self.sequences[row].request.params.logprobs == top]
            picked = [rows[i] for i in group]
            found = token_logprobs(raw[group], chosen[picked], top, self._helpers.token_texts)
            made.update(zip(picked, found, strict=True))
        return made

    def filter(self) -> None:
        """Drops finished rows, then any left padding every remaining row shares."""
        keep = [row for row, sequence in enumerate(self.sequences) if sequence.finish_reason is None]
        if len(keep) == len(self.sequences):
            return
        self.sequences = [self.sequences[row] for row in keep]
        if not keep:
            return
        index = torch.tensor(keep)  # on the CPU for the cache's layers, as in `prefill`
        self.cache.batch_select_indices(index)
        index = index.to(self.attention_mask.device)
        self.attention_mask = self.attention_mask[index]
        self.positions = self.positions[index]
        self.next_input = self.next_input[index]
        if self.can_merge:
            shared_padding = int(self.attention_mask.argmax(dim=1).min())
            if shared_padding:
                for layer in self.cache.layers:
                    layer.keys = layer.keys[:, :, shared_padding:]
                    layer.values = layer.values[:, :, shared_padding:]
                self.attention_mask = self.attention_mask[:, shared_padding:]

    def merge(self, other: DecodeBatch) -> None:
        """Appends `other`'s rows, left-padding the shorter cache to the longer one, a layer at a time (at most
        one layer's old and merged copies are held at once). A merge that fails (out of memory) leaves this
        batch as it was: the layers merged so far go back to this batch's rows, as views of the merged ones."""
        rows, mine, theirs = self.attention_mask.shape[0], self.attention_mask.shape[1], other.attention_mask.shape[1]
        width = max(mine, theirs)

        def joined(own: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
            return torch.cat([_left_pad(own, width - mine), _left_pad(others, width - theirs)])

        merged: list[Any] = []
        try:
            for layer, other_layer in zip(self.cache.layers, other.cache.layers, strict=True):
                keys, values = joined(layer.keys, other_layer.keys), joined(layer.values, other_layer.values)
                layer.keys, layer.values = keys, values
                merged.append(layer)
            attention_mask = torch.cat(
                [F.pad(self.attention_mask, (width - mine, 0)), F.pad(other.attention_mask, (width - theirs, 0))]
            )
            positions = torch.cat([self.positions, other.positions])
            next_input = torch.cat([self.next_input, other.next_input])
        except BaseException:
            for layer in merged:  # [rows, heads, tokens, head_dim]: this batch's rows, without the padding added
                layer.keys = layer.keys[:rows, :, width - mine :]
                layer.values = layer.values[:rows, :, width - mine :]
            raise
        self.attention_mask, self.positions, self.next_input = attention_mask, positions, next_input
        self.sequences += other.sequences


def _left_pad(states: torch.Tensor, width: int) -> torch.Tensor:
    # states: [rows, heads, tokens, head_dim]; pad the token axis on the left
    return F.pad(states, (0, 0, width, 0)) if width else states
