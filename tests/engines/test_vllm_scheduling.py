"""vLLM's own scheduler with the urgent-first rule, stepped by hand: its real queues, KV cache and outputs, no model.

Each step is what vLLM's engine core does: `schedule()`, then `update_from_output()` with one sampled token for
every scheduled row. The rule is read off `num_scheduled_tokens`: which requests a step carries.
"""

import pytest
import torch
from vllm import AsyncEngineArgs, SamplingParams
from vllm.lora.request import LoRARequest
from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.interface import PauseState
from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
from vllm.v1.outputs import ModelRunnerOutput
from vllm.v1.request import Request
from vllm.v1.structured_output import StructuredOutputManager

from engines.vllm_scheduling import UrgentFirstAsyncScheduler, UrgentFirstScheduler, urgent_first

BATCH, CHAT = 9, 5
BLOCK = 16
PROMPT = list(range(10, 40))  # 30 tokens: two blocks


def _scheduler(model_dir, rows=4, blocks=64, cls=UrgentFirstScheduler, **engine_args):
    # Prefix caching off: requests made here carry no block hasher (vLLM's engine core adds one).
    args = AsyncEngineArgs(model=model_dir, dtype="float32", max_num_seqs=rows, scheduling_policy="priority",
                           enable_prefix_caching=False, **engine_args)  # fmt: skip
    config = args.create_engine_config()
    config.cache_config.num_gpu_blocks = blocks
    spec = FullAttentionSpec(block_size=BLOCK, num_kv_heads=1, head_size=64, dtype=torch.float32)
    kv = KVCacheConfig(num_blocks=blocks, kv_cache_tensors=[], kv_cache_groups=[KVCacheGroupSpec(["layer"], spec)])
    return cls(config, kv, StructuredOutputManager(config), block_size=BLOCK)


def _add(scheduler, request_id, priority, max_tokens=20, adapter=0):
    params = SamplingParams(max_tokens=max_tokens, ignore_eos=True)
    lora = LoRARequest(f"adapter-{adapter}", adapter, "/nowhere") if adapter else None  # never read here
    request = Request(request_id, list(PROMPT), params, None, priority=priority, lora_request=lora)
    scheduler.add_request(request)
    return request


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


@pytest.mark.parametrize(("blocks", "alone"), [(8, False), (9, True)])
def test_an_arrival_runs_alone_only_where_the_rows_next_tokens_still_fit(smollm2_dir, blocks, alone):
    """vLLM keeps one block back. Two rows hold two blocks each (of 16 tokens), and the check keeps one more
    each for their next tokens; the chat's 30-token prompt needs two. 8 blocks: 3 free, 1 left after the
    rows' share, so the chat's step is vLLM's own; 9 blocks: 2 left, so the chat runs alone."""
    scheduler = _scheduler(smollm2_dir, blocks=blocks)
    _add(scheduler, "line-1", BATCH)
    _add(scheduler, "line-2", BATCH)
    _step(scheduler)
    _add(scheduler, "chat", CHAT)
    expected = {"chat": len(PROMPT)} if alone else {"line-1": 1, "line-2": 1, "chat": len(PROMPT)}
    assert _step(scheduler) == expected
    assert set(_step(scheduler)) == {"line-1", "line-2", "chat"}  # then everyone, no row preempted


def test_an_arrival_on_an_adapter_with_no_slot_left_is_left_to_vllm(smollm2_dir):
    scheduler = _scheduler(smollm2_dir, enable_lora=True, max_loras=1)
    _add(scheduler, "line", BATCH, adapter=1)
    _step(scheduler)
    _add(scheduler, "chat-other", CHAT, adapter=2)
    _add(scheduler, "chat-same", CHAT + 1, adapter=1)
    # chat-other heads the queue but its adapter would be a second one resident: vLLM's own step, which
    # skips it and takes chat-same beside the row; chat-other waits for the adapter's slot
    assert _step(scheduler) == {"line": 1, "chat-same": len(PROMPT)}
    assert [r.request_id for r in scheduler.waiting] == ["chat-other"]


def test_arrivals_that_end_at_their_prefill_cannot_stop_the_rows(smollm2_dir):
    """Scores and one-token answers leave at once; one arriving every step would otherwise stop the rows."""
    scheduler = _scheduler(smollm2_dir)
    _add(scheduler, "line", BATCH)
    _step(scheduler)
    steps = []
    for i in range(6):
        _add(scheduler, f"score-{i}", CHAT, max_tokens=1)
        steps.append(_step(scheduler))
    assert sum("line" in step for step in steps) == 3  # every other step, at worst


def test_no_step_alone_while_vllm_takes_no_new_requests(smollm2_dir):
    scheduler = _scheduler(smollm2_dir)
    _add(scheduler, "line", BATCH)
    _step(scheduler)
    _add(scheduler, "chat", CHAT)
    scheduler.set_pause_state(PauseState.PAUSED_NEW)
    assert _step(scheduler) == {"line": 1}
    scheduler.set_pause_state(PauseState.UNPAUSED)
    assert _step(scheduler) == {"chat": len(PROMPT)}  # and it has its step alone once vLLM takes requests again


def test_an_arrival_vllm_will_not_schedule_yet_costs_one_empty_step(smollm2_dir):
    """vLLM holds back a request with output still in flight from before; alone, that step is empty, and from
    then on that request is left to vLLM's own steps, which never starve the rows."""
    scheduler = _scheduler(smollm2_dir)
    _add(scheduler, "line", BATCH)
    _step(scheduler)
    held = _add(scheduler, "chat", CHAT)
    held.num_stale_output_tokens = 1  # vLLM's own reason to skip a waiting request (scheduler.py)
    assert _step(scheduler) == {}
    assert _step(scheduler) == {"line": 1}
    assert _step(scheduler) == {"line": 1}
    held.num_stale_output_tokens = 0
    assert _step(scheduler) == {"line": 1, "chat": len(PROMPT)}


def test_with_asynchronous_scheduling_every_row_still_gets_every_token(smollm2_dir):
    """vLLM's async scheduling (its default on GPUs) schedules step N+1 before step N's tokens are back: the
    steps here overlap the same way, one output in flight, and the rows skipped for a chat end whole."""
    scheduler = _scheduler(smollm2_dir, cls=UrgentFirstAsyncScheduler)
    _add(scheduler, "line-1", BATCH, max_tokens=8)
    _add(scheduler, "line-2", BATCH, max_tokens=8)
    tokens: dict[str, int] = {}
    in_flight = []
    for step in range(40):
        if step == 3:
            _add(scheduler, "chat", CHAT, max_tokens=4)
        in_flight.append(scheduler.schedule())
        if len(in_flight) == 2 or not (scheduler.running or scheduler.waiting):
            output = in_flight.pop(0)
            ids = list(output.num_scheduled_tokens)
            sampled = ModelRunnerOutput(req_ids=ids, req_id_to_index={r: i for i, r in enumerate(ids)},
                                        sampled_token_ids=[[7] for _ in ids])  # fmt: skip
            for outputs in scheduler.update_from_output(output, sampled).values():
                for done in outputs.outputs:
                    tokens[done.request_id] = tokens.get(done.request_id, 0) + len(done.new_token_ids)
        if step == 3:
            assert set(in_flight[-1].num_scheduled_tokens) == {"chat"}  # its step alone, with rows' tokens out
    assert tokens == {"line-1": 8, "line-2": 8, "chat": 4}


def test_the_class_follows_vllms_choice_of_scheduler():
    assert urgent_first(True) is UrgentFirstAsyncScheduler and issubclass(urgent_first(True), AsyncScheduler)
    assert urgent_first(False) is urgent_first(None) is UrgentFirstScheduler
