"""vLLM's scheduler, taught the HF engine's rule for a chat beside a batch: its first step is its prefill alone.

vLLM's priority policy orders the waiting queue and preempts when the KV cache is full, but a step still
schedules every running row before any waiting request, so a chat that arrives beside a batch shares its
prefill step with every batch row's decode (measured on SmolLM2 on the CPU: a 38-token prefill alone takes
about 120 ms, beside seven decoding rows 140-200 ms). Here, when the head of the waiting queue is more urgent
than every running row and a slot is free for it, the step schedules the urgent requests alone; the running
rows skip that one step (vLLM's model runner keeps a skipped row's state, as it does when the token budget
runs out before a row) and the next step carries everyone. A step over rows as urgent as the arrival (chats
already answering) is left as vLLM makes it, so a stream of chats cannot stop a batch's decode.

Written against vLLM 0.32.0's `Scheduler` (`running`, `waiting`, `max_num_running_reqs`); used through
vLLM's own `scheduler_cls` setting, on the scheduler class vLLM picks (`AsyncScheduler` where it schedules
asynchronously, as on GPUs).
"""

from __future__ import annotations

from typing import Any

from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.request_queue import create_request_queue
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.request import Request, RequestStatus


class UrgentFirst:
    """Mixed into a vLLM scheduler class: see the module's docstring."""

    _refused: str | None = None  # an urgent head whose step alone scheduled nothing: left to vLLM from then on

    def schedule(self, *args: Any, **kwargs: Any) -> Any:
        urgent = self._urgent_arrivals()
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
        if not output.num_scheduled_tokens:
            # The urgent requests could not run alone (no KV blocks free without preempting a row, their
            # adapter's slot taken, a grammar still compiling): the next steps are vLLM's own, which may
            # preempt the least urgent row for them, rather than empty steps that starve every row.
            self._refused = urgent[0].request_id
        return output

    def _urgent_arrivals(self) -> list[Request]:
        """The waiting requests, most urgent first, that this step should run alone: taken out of `waiting`."""
        running: list[Request] = self.running  # type: ignore[has-type]
        waiting = self.waiting  # type: ignore[has-type]
        free = self.max_num_running_reqs - len(running)  # type: ignore[attr-defined]
        if not running or not waiting or free <= 0 or self.kv_holding_waiting:  # type: ignore[attr-defined]
            return []
        least_urgent_row = min(row.priority for row in running)
        head = waiting.peek_request()
        ready = head.status == RequestStatus.WAITING and head.request_id != self._refused
        if not ready or head.priority >= least_urgent_row:
            return []
        urgent = []
        while waiting and len(urgent) < free and waiting.peek_request().priority < least_urgent_row:
            urgent.append(waiting.pop_request())
        return urgent


class UrgentFirstScheduler(UrgentFirst, Scheduler):
    pass


class UrgentFirstAsyncScheduler(UrgentFirst, AsyncScheduler):
    pass


def urgent_first(async_scheduling: bool | None) -> type:
    """The scheduler class for a vLLM config whose `async_scheduling` vLLM has resolved."""
    return UrgentFirstAsyncScheduler if async_scheduling else UrgentFirstScheduler
