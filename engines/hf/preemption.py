"""A more urgent request stops the forward pass in flight at its next layer, instead of waiting for the step.

An HF step cannot be interrupted from outside, and on a slow device a batch's step is as long as a chat's
whole prefill: a chat that arrives just after a step started would wait for it (its time to first token
doubled beside a batch, measured). So every decoder layer checks, before it runs, whether a request more
urgent than every row of the forward is waiting; if one is, the forward stops there and the step hands its
rows back (a decode takes back the keys its finished layers cached, a prefill's requests wait again). The
work of the layers already run is lost, which is the price a batch pays for interactive traffic.

A forward that carries a row as urgent as the arrival (chats already answering beside the batch) runs on:
stopping it would cost those rows their step, and a stream of arrivals could then stop every decode.

The flag is written by the event loop and read by the compute thread between layers: a plain attribute is
enough, as one late read only costs one layer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch


class StepPreempted(Exception):
    """Raised inside a forward pass at a layer boundary: a more urgent request is waiting."""


class Preemption:
    def __init__(self, model: Any) -> None:
        self._urgent: int | None = None  # the priority of the most urgent request waiting since the step began
        self._running: int | None = None  # the most urgent row of the forward in flight; None: not stoppable
        self.preempted_forwards = 0
        for layer in _decoder_layers(model):
            layer.register_forward_pre_hook(self._check)

    def request(self, priority: int) -> None:
        """From the event loop: a request of `priority` is waiting for the next step."""
        if self._urgent is None or priority < self._urgent:
            self._urgent = priority

    def clear(self) -> None:
        """From the event loop, before it chooses a step's requests: those waiting now are in that choice."""
        self._urgent = None

    @contextmanager
    def forward_of(self, priorities: Iterable[int]) -> Iterator[None]:
        """A forward pass over rows of these priorities, stoppable by a request more urgent than all of them."""
        self._running = min(priorities)
        try:
            yield
        except StepPreempted:
            self.preempted_forwards += 1
            raise
        finally:
            self._running = None

    def _check(self, module: torch.nn.Module, args: Any) -> None:
        if self._running is not None and self._urgent is not None and self._urgent < self._running:
            raise StepPreempted


def _decoder_layers(model: Any) -> list[torch.nn.Module]:
    """The model's stack of decoder layers (under any adapter wrapper): a list as long as its text layer count,
    of `*DecoderLayer`s where the model names them so (a vision tower may have as many blocks). None found:
    no layer checks, and steps run whole."""
    count = getattr(model.config.get_text_config(), "num_hidden_layers", None)
    stacks = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == count]
    named = [stack for stack in stacks if type(stack[0]).__name__.endswith("DecoderLayer")]
    return list((named or stacks or [[]])[-1])
