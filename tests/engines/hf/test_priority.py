"""Priorities in the HF engine: a more urgent request is admitted first, and the step that admits it beside
less urgent rows is its prefill alone (engines/hf/stepper.py), without changing anyone's answer."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from engines import load_engine
from engines.hf.errors import translate_error
from engines.hf.scheduler import Scheduler
from engines.hf.stepper import Stepper

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = {"temperature": 0}
BATCH, CHAT = 9, 5  # a batch line's priority and an interactive chat's (inferq's 0 is the highest)


def _tokens(outputs, request_id):
    return [t for rid, delta in outputs if rid == request_id for t in delta.token_ids]


def test_a_step_admitting_a_more_urgent_request_is_its_prefill_alone(tiny_engine):
    stepper = Stepper(tiny_engine.model, tiny_engine.tokenizer, has_adapters=False, grammars=None)
    line = tiny_engine.prepare_chat(QUESTION, max_new_tokens=12, request_id="line", priority=BATCH, **GREEDY)
    chat = tiny_engine.prepare_chat(QUESTION, max_new_tokens=6, request_id="chat", priority=CHAT, **GREEDY)
    peer = tiny_engine.prepare_chat(QUESTION, max_new_tokens=6, request_id="peer", priority=BATCH, **GREEDY)

    first = stepper.step([line], set()).outputs
    assert [rid for rid, _ in first] == ["line"]
    urgent_step = stepper.step([chat], set()).outputs
    assert [rid for rid, _ in urgent_step] == ["chat"]  # the batch row waited one step
    equal_step = stepper.step([peer], set()).outputs
    assert sorted(rid for rid, _ in equal_step) == ["chat", "line", "peer"]  # no one is more urgent: all move

    outputs = first + urgent_step + equal_step
    while stepper.num_rows:
        outputs += stepper.step([], set()).outputs
    solo = Stepper(tiny_engine.model, tiny_engine.tokenizer, has_adapters=False, grammars=None)
    alone = []
    while not alone or solo.num_rows:
        alone += solo.step([line] if not alone else [], set()).outputs
    assert _tokens(outputs, "line") == _tokens(alone, "line")  # waiting a step changed nothing in its answer
    assert len(_tokens(outputs, "chat")) == 6 and len(_tokens(outputs, "peer")) == 6


def test_a_batch_with_a_row_as_urgent_as_the_arrival_keeps_its_step(tiny_engine):
    """A chat already answering beside a batch line: the next chat's step decodes them both too, so that a
    stream of chats cannot stop every decode."""
    stepper = Stepper(tiny_engine.model, tiny_engine.tokenizer, has_adapters=False, grammars=None)
    line = tiny_engine.prepare_chat(QUESTION, max_new_tokens=12, request_id="line", priority=BATCH, **GREEDY)
    answering = tiny_engine.prepare_chat(QUESTION, max_new_tokens=12, request_id="answering", priority=CHAT, **GREEDY)
    arriving = tiny_engine.prepare_chat(QUESTION, max_new_tokens=6, request_id="arriving", priority=CHAT, **GREEDY)
    stepper.step([line], set())
    stepper.step([answering], set())  # its prefill alone: the line skipped that step
    assert sorted(rid for rid, _ in stepper.step([arriving], set()).outputs) == ["answering", "arriving", "line"]


def test_arrivals_that_end_at_their_prefill_cannot_stop_the_rows(tiny_engine):
    """One-token answers leave at once; one arriving every step would otherwise stop the batch's rows."""
    stepper = Stepper(tiny_engine.model, tiny_engine.tokenizer, has_adapters=False, grammars=None)
    line = tiny_engine.prepare_chat(QUESTION, max_new_tokens=12, request_id="line", priority=BATCH, **GREEDY)
    stepper.step([line], set())
    moved = 0
    for i in range(6):
        short = tiny_engine.prepare_chat(QUESTION, max_new_tokens=1, request_id=f"short-{i}", priority=CHAT, **GREEDY)
        moved += "line" in {rid for rid, _ in stepper.step([short], set()).outputs}
    assert moved == 3  # every other step, at worst


def test_a_chats_prefill_is_not_widened_by_the_batch_lines_behind_it(tiny_engine):
    stepper = Stepper(tiny_engine.model, tiny_engine.tokenizer, has_adapters=False, grammars=None)
    scheduler = Scheduler(stepper, ThreadPoolExecutor(1), translate_error, max_batch_rows=8, max_prefill_tokens=4096)
    for request_id, priority in (("line-1", BATCH), ("chat", CHAT), ("line-2", BATCH)):
        scheduler._enqueue(tiny_engine.prepare_chat(QUESTION, request_id=request_id, priority=priority))
    assert [r.request_id for r in scheduler._admit()] == ["chat"]
    assert [r.request_id for r in scheduler._admit()] == ["line-1", "line-2"]  # the next step takes the lines


def test_the_prefill_budget_counts_the_padding_to_the_longest_prompt(tiny_engine):
    stepper = Stepper(tiny_engine.model, tiny_engine.tokenizer, has_adapters=False, grammars=None)
    short = tiny_engine.prepare_chat(QUESTION, request_id="short")
    long = tiny_engine.prepare_chat([{"role": "user", "content": "word " * 200}], request_id="long")
    budget = 2 * long.prompt_length - 1  # both prompts unpadded fit; padded to the long one, two do not
    assert short.prompt_length + long.prompt_length <= budget
    scheduler = Scheduler(stepper, ThreadPoolExecutor(1), translate_error, max_batch_rows=8, max_prefill_tokens=budget)
    scheduler._enqueue(long)
    scheduler._enqueue(short)
    assert [r.request_id for r in scheduler._admit()] == ["long"]


async def test_the_most_urgent_waiting_request_is_admitted_first(tiny_llama_dir):
    engine = load_engine("huggingface", tiny_llama_dir, max_batch_size=1)  # one row: the others wait
    order: list[str] = []

    async def run(request_id: str, priority: int) -> None:
        request = engine.prepare_chat(QUESTION, max_new_tokens=4, request_id=request_id, priority=priority, **GREEDY)
        async for _ in engine.generate(request):
            pass
        order.append(request_id)

    try:
        holding = engine.generate(engine.prepare_chat(QUESTION, max_new_tokens=300, request_id="holding", **GREEDY))
        await holding.__anext__()
        # queued in this order behind the one running row: a batch line, then a chat
        waiting = [asyncio.ensure_future(run("line", BATCH)), asyncio.ensure_future(run("chat", CHAT))]
        await holding.__anext__()  # a step later, both are queued
        await engine.abort("holding")
        await holding.aclose()
        await asyncio.gather(*waiting)
        assert order == ["chat", "line"]
    finally:
        await engine.close()
