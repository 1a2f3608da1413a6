"""vLLM's own scheduler with the urgent-first rule, stepped by hand: its real queues, KV cache and outputs, no model.

Each step is what vLLM's engine core does: `schedule()`, then `update_from_output()` with one sampled token for
every scheduled row. The rule is read off `num_scheduled_tokens`: which requests a step carries.
"""

import pytest
import torch
from vllm import AsyncEngineArgs, SamplingParams
from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
from vllm.v1.outputs import ModelRunnerOutput
from vllm.v1.request import Request
from vllm.v1.structured_output import StructuredOutputManager

from engines.vllm_scheduling import UrgentFirstAsyncScheduler, UrgentFirstScheduler, urgent_first

BATCH, CHAT = 9, 5
BLOCK = 16
PROMPT = list(range(10, 40))  # 30 tokens: two blocks


def _scheduler(model_dir, rows=4, blocks=64, cls=UrgentFirstScheduler):
    # Prefix caching off: requests made here carry no block hasher (vLLM's engine core adds one).
    args = AsyncEngineArgs(model=model_dir, dtype="float32", max_num_seqs=rows, scheduling_policy="priority",
                           enable_prefix_caching=False)  # fmt: skip
    config = args.create_engine_config()
    config.cache_config.num_gpu_blocks = blocks
    spec = FullAttentionSpec(block_size=BLOCK, num_kv_heads=1, head_size=64, dtype=torch.float32)
    kv = KVCacheConfig(num_blocks=blocks, kv_cache_tensors=[], kv_cache_groups=[KVCacheGroupSpec(["layer"], spec)])
    return cls(config, kv, StructuredOutputManager(config), block_size=BLOCK)


def _add(scheduler, request_id, priority, max_tokens=20):
    params = SamplingParams(max_tokens=max_tokens, ignore_eos=True)
    scheduler.add_request(Request(request_id, list(PROMPT), params, None, priority=priority))


def _step(scheduler) -> dict[str, int]:
    output = scheduler.schedule()
    ids = list(output.num_scheduled_tokens)
    sampled = ModelRunnerOutput(req_ids=ids, req_id_to_index={r: i for i, r in enumerate(ids)},
                                sampled_token_ids=[[7] for _ in ids])  # fmt: skip
    scheduler.update_from_output(output, sampled)
    return dict(output.num_scheduled_tokens)


@pytest.mark.parametrize("cls", [UrgentFirstScheduler, UrgentFirstAsyncScheduler])
def test_a_chat_beside_batch_rows_has_its_prefill_step_alone(smollm2_dir, cls):
    scheduler = _scheduler(smollm2_dir, cls=cls)
    _add(scheduler, "line-1", BATCH)
    _add(scheduler, "line-2", BATCH)
    assert _step(scheduler) == {"line-1": len(PROMPT), "line-2": len(PROMPT)}
    assert _step(scheduler) == {"line-1": 1, "line-2": 1}
    _add(scheduler, "chat", CHAT)
    assert _step(scheduler) == {"chat": len(PROMPT)}  # the rows skip this one step
    assert _step(scheduler) == {"line-1": 1, "line-2": 1, "chat": 1}  # and everyone goes on together
    assert [r.request_id for r in scheduler.running] == ["line-1", "line-2", "chat"]


def test_the_skipped_rows_still_end_with_every_token(smollm2_dir):
    scheduler = _scheduler(smollm2_dir)
    _add(scheduler, "line", BATCH, max_tokens=6)
    _step(scheduler)
    _add(scheduler, "chat", CHAT, max_tokens=3)
    steps = [_step(scheduler) for _ in range(8)]
    assert sum("line" in step for step in steps) == 5 and sum("chat" in step for step in steps) == 3
    assert not scheduler.running and not scheduler.waiting


def test_a_step_with_a_row_as_urgent_as_the_arrival_is_vllms_own(smollm2_dir):
    """Chats already answering keep their step: a stream of chats cannot stop a batch's decode."""
    scheduler = _scheduler(smollm2_dir)
    _add(scheduler, "line", BATCH)
    _add(scheduler, "chat-1", CHAT)
    _step(scheduler)
    _add(scheduler, "chat-2", CHAT)
    assert _step(scheduler) == {"chat-1": 1, "line": 1, "chat-2": len(PROMPT)}


def test_urgent_arrivals_take_only_the_free_rows(smollm2_dir):
    scheduler = _scheduler(smollm2_dir, rows=3)
    _add(scheduler, "line", BATCH)
    _step(scheduler)
    for name in ("chat-1", "chat-2", "chat-3"):
        _add(scheduler, name, CHAT)
    assert _step(scheduler) == {"chat-1": len(PROMPT), "chat-2": len(PROMPT)}
    assert len(scheduler.running) == 3 and [r.request_id for r in scheduler.waiting] == ["chat-3"]


def test_with_no_free_row_the_arrival_waits_and_the_rows_run(smollm2_dir):
    scheduler = _scheduler(smollm2_dir, rows=2)
    _add(scheduler, "line-1", BATCH)
    _add(scheduler, "line-2", BATCH)
    _step(scheduler)
    _add(scheduler, "chat", CHAT)
    assert _step(scheduler) == {"line-1": 1, "line-2": 1}


def test_an_arrival_that_cannot_run_alone_is_left_to_vllm(smollm2_dir):
    """Four usable blocks (vLLM keeps one back): two rows hold all four, the chat needs two of its own."""
    scheduler = _scheduler(smollm2_dir, blocks=5)
    _add(scheduler, "line-1", BATCH, max_tokens=6)
    _add(scheduler, "line-2", BATCH, max_tokens=6)
    _step(scheduler)
    _add(scheduler, "chat", CHAT, max_tokens=3)
    assert _step(scheduler) == {}  # alone it gets no blocks: one empty step, then vLLM's own steps...
    steps = []
    while scheduler.running or scheduler.waiting:
        steps.append(_step(scheduler))
        assert steps[-1], f"an empty step again after {steps}"  # ...which never starve the rows
    assert steps[0] == {"line-1": 1, "line-2": 1}
    ends = {name: max(i for i, step in enumerate(steps) if name in step) for name in ("line-1", "line-2", "chat")}
    # vLLM preempted line-2 (the least urgent, latest row) when line-1 needed a block; the chat, first in the
    # queue, ran once line-1 had ended, and line-2 last
    assert ends["line-1"] < ends["chat"] < ends["line-2"]


def test_the_class_follows_vllms_choice_of_scheduler():
    assert urgent_first(True) is UrgentFirstAsyncScheduler and issubclass(urgent_first(True), AsyncScheduler)
    assert urgent_first(False) is urgent_first(None) is UrgentFirstScheduler
