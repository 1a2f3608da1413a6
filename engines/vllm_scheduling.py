"""vLLM's scheduler, taught the HF engine's rule for a chat beside a batch: its first step is its prefill alone.

vLLM's priority policy orders the waiting queue and preempts when the KV cache is full, but a step still
schedules every running row before any waiting request, so a chat that arrives beside a batch shares its
prefill step with every batch row's decode (measured on SmolLM2 on the CPU: a 38-token prefill alone takes
about 120 ms, beside seven decoding rows 140-200 ms). Here, when the head of the waiting queue is more urgent
than every running row, the step schedules the urgent requests alone; the running rows skip that one step
(vLLM's model runner keeps a skipped row's state, as it does when the token budget runs out before a row)
and the next step carries everyone. The urgent requests taken are those that fit beside the rows in vLLM's
own limits (free rows, adapters resident at once, KV blocks with the rows' next tokens and vLLM's watermark
kept); two steps alone never follow each other, so requests that end at their prefill cannot stop the rows
for good; and a step over rows as urgent as the arrival (chats already answering) is left as vLLM makes it,
so a stream of chats cannot stop a batch's decode.

Written against vLLM 0.32.0's `Scheduler` (`running`, `waiting`, `max_num_active_reqs`, `kv_cache_manager`);
used through vLLM's own `scheduler_cls` setting, on the scheduler class vLLM picks (`AsyncScheduler` where it
schedules asynchronously, as on GPUs). Off under speculative decoding, while vLLM is paused, and for its
data-parallel prefill pacing.
"""

from __future__ import annotations

from typing import Any

from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.interface import PauseState
from vllm.v1.core.sched.request_queue import create_request_queue
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.request import Request, RequestStatus


class UrgentFirst:
    """Mixed into a vLLM scheduler class: see the module's docstring."""

    _refused: str | None = None  # an urgent head whose step alone scheduled nothing: left to vLLM from then on
    _alone_at = -1  # the last step that ran urgent requests alone

    def schedule(self, *args: Any, **kwargs: Any) -> Any:
        throttled = bool(kwargs.get("throttle_prefills", args[0] if args else False))  # data-parallel pacing
        urgent = [] if throttled else self._urgent_arrivals()
        if not urgent:
            return super().schedule(*args, **kwargs)  # type: ignore[misc]
        running, waiting = self.running, self.waiting  # type: ignore[has-type]
        alone = create_request_queue(self.policy)  # type: ignore[attr-defined]
        for request in urgent:
            alone.add_request(request)
        self.running, self.waiting = [], alone
        try:
            output = super().schedule(*args, **kwargs)  # type: ignore[misc]
        finally:
            # What the step did not take goes back to wait; the rows admitted join the batch after its rows.
            for request in self.waiting:
                waiting.add_request(request)
            self.running, self.waiting = running + self.running, waiting
        self._alone_at = self.current_step  # type: ignore[attr-defined]
        if not output.num_scheduled_tokens:
            # The urgent requests could not run alone (a grammar still compiling, a remote KV load): the next
            # steps are vLLM's own, rather than empty steps that starve every row.
            self._refused = urgent[0].request_id
        return output

    def _urgent_arrivals(self) -> list[Request]:
        """The waiting requests, most urgent first, that this step should run alone: taken out of `waiting`."""
        running: list[Request] = self.running  # type: ignore[has-type]
        waiting = self.waiting  # type: ignore[has-type]
        if not running or not waiting or not self._may_step_alone():
            return []
        least_urgent_row = min(row.priority for row in running)
        head = waiting.peek_request()
        if head.priority >= least_urgent_row or head.request_id == self._refused or not _ready(head):
            return []
        # vLLM's own limits, which it checks against the running rows, and those are out of sight in the step
        # alone: rows, adapters resident at once, and KV blocks (the rows' next tokens and vLLM's watermark
        # kept, so that the step after does not preempt a row for what the urgent prompts took).
        free_rows = self.max_num_active_reqs - len(running) - self.num_waiting_for_streaming_input  # type: ignore[attr-defined]
        kv = self.kv_cache_manager  # type: ignore[attr-defined]
        groups = len(self.kv_cache_config.kv_cache_groups)  # type: ignore[attr-defined]
        free_blocks = kv.block_pool.get_num_free_blocks() - groups * len(running) - kv.watermark_blocks
        max_loras = self.lora_config.max_loras if self.lora_config else 0  # type: ignore[attr-defined]
        adapters = {row.lora_request.lora_int_id for row in running if _adapter(row)}
        urgent: list[Request] = []
        while waiting and len(urgent) < free_rows:
            request = waiting.peek_request()
            blocks = groups * -(-request.num_tokens // self.block_size)  # type: ignore[attr-defined]
            adapter = _adapter(request)
            if request.priority >= least_urgent_row or blocks > free_blocks:
                break
            if adapter and adapter not in adapters and len(adapters) >= max_loras:
                break
            urgent.append(waiting.pop_request())
            free_blocks -= blocks
            if adapter:
                adapters.add(adapter)
        return urgent

    def _may_step_alone(self) -> bool:
        return (
            self._pause_state == PauseState.UNPAUSED  # type: ignore[attr-defined]
            and not self.kv_holding_waiting  # type: ignore[attr-defined]
            # never two steps alone in a row: requests that end at their prefill (scores, one-token answers)
            # arriving every step would otherwise stop the rows for good
            and self._alone_at != self.current_step  # type: ignore[attr-defined]
            # a skipped row's draft tokens under speculative decoding are not tested here
            and self.vllm_config.speculative_config is None  # type: ignore[attr-defined]
        )


def _ready(request: Request) -> bool:
    """Ready to be scheduled now: plain waiting, or a grammar vLLM has finished compiling."""
    if request.status == RequestStatus.WAITING:
        return True
    grammar = request.structured_output_request.grammar if request.structured_output_request else None
    waits_for_grammar = request.status == RequestStatus.WAITING_FOR_STRUCTURED_OUTPUT_GRAMMAR
    return waits_for_grammar and grammar is not None and not isinstance(grammar, Exception)


def _adapter(request: Request) -> int:
    return request.lora_request.lora_int_id if request.lora_request else 0


class UrgentFirstScheduler(UrgentFirst, Scheduler):
    pass


class UrgentFirstAsyncScheduler(UrgentFirst, AsyncScheduler):
    pass


def urgent_first(async_scheduling: bool | None) -> type:
    """The scheduler class for a vLLM config whose `async_scheduling` vLLM has resolved."""
    return UrgentFirstAsyncScheduler if async_scheduling else UrgentFirstScheduler
