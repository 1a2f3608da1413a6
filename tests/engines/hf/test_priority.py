"""Priorities in the HF engine: a more urgent request is admitted first, and the step that admits it beside
less urgent rows is its prefill alone (engines/hf/stepper.py), without changing anyone's answer."""

import asyncio

from engines import load_engine
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
