"""The compute side of the HF engine: one step of every batch, on the engine's single compute thread."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from engines.base import ChatRequest
from engines.hf.batch import DecodeBatch, Output, Sequence, StepHelpers
from engines.hf.detokenizer import IncrementalDetokenizer
from engines.hf.errors import request_failure
from engines.hf.grammar import Grammars
from engines.hf.logprobs import TokenTexts
from engines.hf.preemption import Preemption, StepPreempted
from engines.hf.sampling import RequestSampler
from engines.stopping import StopStringMatcher


@dataclass
class StepOutcome:
    outputs: list[Output] = field(default_factory=list)
    # Admitted requests whose prefill a more urgent arrival stopped: nothing of them ran, they wait again.
    deferred: list[ChatRequest] = field(default_factory=list)


class Stepper:
    """Owns the running batches, one per adapter: rows for different adapters never share a forward pass."""

    def __init__(self, model: Any, tokenizer: Any, has_adapters: bool, grammars: Grammars | None) -> None:
        self._model = model
        self._tokenizer = tokenizer
        self._has_adapters = has_adapters
        self._helpers = StepHelpers(
            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
            token_texts=TokenTexts(tokenizer),
            grammars=grammars,
        )
        self._batches: dict[str | None, DecodeBatch] = {}
        self._skipped_last = False  # the last step's decode was skipped for an urgent admission's prefill
        self.preemption = Preemption(model)

    @property
    def num_rows(self) -> int:
        # read by the event loop while the compute thread may add or drop a batch: a snapshot (one C call)
        return sum(len(batch.sequences) for batch in list(self._batches.values()))

    def can_join(self, adapter: str | None) -> bool:
        batch = self._batches.get(adapter)
        return batch is None or batch.can_merge

    def request_ids(self) -> set[str]:
        return {s.request.request_id for batch in self._batches.values() for s in batch.sequences}

    def reset(self) -> None:
        """Forgets every running row (after a failed step their cache is in an unknown state)."""
        self._batches.clear()

    @torch.inference_mode()
    def step(self, admitted: list[ChatRequest], aborted: set[str]) -> StepOutcome:
        """One decode step of every running batch, then the admitted requests' prefill.

        A step that admits a request more urgent than every row of a batch (a chat beside a batch's rows) is a
        prefill only for that batch: its rows skip it, so that the chat's first token waits for its own prefill,
        not for their decode too (its time to first token stays close to an idle engine's). A request more urgent
        than every row of the forward in flight that arrives during a step stops it at the next layer
        (`Preemption`): the rows not decoded yet skip this step, and the requests not prefilled yet are handed
        back as `deferred`.

        No request fails another: a request whose own work fails (its sampling, its prefill, its joining the
        batch) ends with its error alone. Only a failed forward pass over a running batch fails that batch's
        rows, whose caches it left half-written; a fault of the device (EngineDead) is raised for the scheduler
        to end all."""
        outcome = StepOutcome()
        for batch in self._batches.values():
            for sequence in batch.sequences:
                if sequence.request.request_id in aborted:
                    outcome.outputs.append((sequence.request.request_id, sequence.abort()))
        self._filter(outcome.outputs)
        preempted = self._decode(outcome.outputs, min((request.priority for request in admitted), default=None))
        for adapter in dict.fromkeys(request.adapter for request in admitted):
            group = [request for request in admitted if request.adapter == adapter]
            # Requests with images prefill one at a time: their pixel values do not stack across processors'
            # shapes, and only the prefill needs them.
            prefills = [[request] for request in group if request.model_inputs]
            plain = [request for request in group if not request.model_inputs]
            for requests in prefills + ([plain] if plain else []):
                # a cache that cannot take rows in (a sliding window) once a prefill of this step made it: later
                # groups wait for its batch to end, as `_admit` has them do across steps
                if not preempted and self.can_join(adapter):
                    try:
                        outcome.outputs += self._prefill(adapter, requests, outcome.deferred)
                        continue
                    except StepPreempted:
                        preempted = True
                outcome.deferred += requests
        self._filter(outcome.outputs)
        return outcome

    def _filter(self, outputs: list[Output]) -> None:
        """Drops every batch's ended rows, and the batches left empty. Selecting rows copies each layer's cache:
        where that fails (out of memory), the batch's cache is half-selected, so its rows fail, and only its."""
        for adapter, batch in list(self._batches.items()):
            try:
                batch.filter()
            except Exception as exc:
                error = request_failure(exc)
                outputs += [(request_id, error) for request_id in {s.request.request_id for s in batch.sequences}]
                del self._batches[adapter]
                continue
            if not batch.sequences:
                del self._batches[adapter]

    def _decode(self, outputs: list[Output], arrival: int | None) -> bool:
        """Decodes every batch into `outputs`; True when a more urgent arrival stopped one. Each batch is weighed
        on its own: one whose rows are all less urgent than this step's most urgent admission (`arrival`) skips
        the step, one with a row as urgent (chats already answering, another adapter's) takes it. Never two steps
        skipped in a row: admissions that end at their prefill (one-token answers) would stop the rows for good."""
        preempted = False
        skipped = False
        for adapter, batch in list(self._batches.items()):
            if batch.sequences:
                priorities = [s.request.priority for s in batch.sequences]
                if arrival is not None and arrival < min(priorities) and not self._skipped_last:
                    skipped = True
                    continue
                # Only plain full-attention caches know how to take a half-run step back.
                stoppable = self.preemption.forward_of(priorities) if batch.can_merge else nullcontext()
                try:
                    with self._adapter(adapter), stoppable:
                        outputs += batch.decode(self._model)
                except StepPreempted:
                    preempted = True
                except Exception as exc:
                    error = request_failure(exc)
                    outputs += [(request_id, error) for request_id in {s.request.request_id for s in batch.sequences}]
                    del self._batches[adapter]
        self._skipped_last = skipped
        return preempted

    def _prefill(
        self, adapter: str | None, group: list[ChatRequest], deferred: list[ChatRequest], stoppable: bool = True
    ) -> list[Output]:
        """Prefills `group` together and joins it to its adapter's batch. If either fails, each request is
        prefilled alone, so that a request that cannot run (or join) fails alone (those a cache that cannot take
        rows in would refuse go to `deferred`); a failed join leaves the running rows as they were. Raises
        StepPreempted when a more urgent arrival stopped the group's forward (nothing joined); the one-by-one
        retries run to their end, as some of them may have joined already."""
        preemptible = self.preemption.forward_of(r.priority for r in group) if stoppable else nullcontext()
        joined = None
        try:
            with self._adapter(adapter), preemptible:
                joined, first_tokens = DecodeBatch.prefill(self._model, group, self._new_sequence, self._helpers)
            self._join(adapter, joined)
            return first_tokens
        except StepPreempted:
            raise
        except Exception as exc:
            if len(group) == 1:
                return [(group[0].request_id, request_failure(exc))]
        # Retried out of the `except` block, the group's batch let go: while an exception is handled, its
        # traceback holds the failed forward's frames (the group's cache, its activations), the very memory a
        # retry alone may need after an out-of-memory.
        del joined
        outputs: list[Output] = []
        for request in group:
            if self.can_join(adapter):
                outputs += self._prefill(adapter, [request], deferred, stoppable=False)
            else:
                deferred.append(request)
        return outputs

    def _join(self, adapter: str | None, joined: DecodeBatch) -> None:
        running = self._batches.get(adapter)
        if running is not None and running.sequences:
            running.merge(joined)
        else:
            self._batches[adapter] = joined

    def _new_sequence(self, request: ChatRequest, index: int, sampler: RequestSampler) -> Sequence:
        params = request.params
        return Sequence(
            request=request,
            index=index,
            sampler=sampler,
            detokenizer=IncrementalDetokenizer(self._tokenizer, params.skip_special_tokens),
            stop_matcher=StopStringMatcher(params.stop) if params.stop else None,
            token_ids=list(request.prompt_ids),
            grammar=self._helpers.grammars.matcher(params.constraint) if params.constraint is not None else None,
        )

    @contextmanager
    def _adapter(self, name: str | None) -> Iterator[None]:
        if not self._has_adapters:
            yield
        elif name is None:
            self._model.disable_adapters()
            try:
                yield
            finally:
                self._model.enable_adapters()
        else:
            self._model.set_adapter(name)
            yield
