"""A more urgent request stops the HF step in flight at its next layer (engines/hf/preemption.py): the stopped
decode takes back what its finished layers cached, a stopped prefill's requests wait again, and nobody's
answer changes."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from engines.hf.errors import translate_error
from engines.hf.scheduler import Scheduler
from engines.hf.stepper import Stepper

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = {"temperature": 0}
BATCH, CHAT = 9, 5  # a batch line's priority and an interactive chat's (inferq's 0 is the highest)
HANG_S = 60  # only turns a hang into a failure


def _stepper(engine) -> Stepper:
    return Stepper(engine.model, engine.tokenizer, has_adapters=False, grammars=None)


def _tokens(outputs, request_id):
    return [t for rid, delta in outputs if rid == request_id for t in delta.token_ids]


def _alone(engine, request) -> list[int]:
    stepper, outputs = _stepper(engine), []
    while not outputs or stepper.num_rows:
        outputs += stepper.step([request] if not outputs else [], set()).outputs
    return _tokens(outputs, request.request_id)


def test_a_stopped_decode_takes_its_half_run_step_back(tiny_engine):
    line = tiny_engine.prepare_chat(QUESTION, max_new_tokens=12, request_id="line", priority=BATCH, **GREEDY)
    stepper = _stepper(tiny_engine)
    outputs = stepper.step([line], set()).outputs
    stopped = 0
    while stepper.num_rows:
        if len(outputs) % 3 == 1:  # now and then a chat arrives while the line decodes
            stepper.preemption.request(CHAT)
            outcome = stepper.step([], set())
            stepper.preemption.clear()
            assert outcome.outputs == [] and outcome.deferred == []  # stopped before any token
            stopped += 1
        outputs += stepper.step([], set()).outputs
    assert stopped >= 3 and stepper.preemption.preempted_forwards == stopped
    # the layers that ran before each stop cached keys of their own: had they stayed, the cache's layers would
    # disagree in length and the answer would change or fail
    assert _tokens(outputs, "line") == _alone(tiny_engine, line)


def test_a_request_no_more_urgent_than_the_rows_does_not_stop_them(tiny_engine):
    line = tiny_engine.prepare_chat(QUESTION, max_new_tokens=4, request_id="line", priority=CHAT, **GREEDY)
    stepper = _stepper(tiny_engine)
    stepper.step([line], set())
    stepper.preemption.request(CHAT)
    assert [rid for rid, _ in stepper.step([], set()).outputs] == ["line"]
    assert stepper.preemption.preempted_forwards == 0


def test_a_stopped_prefill_hands_its_requests_back_untouched(tiny_engine):
    line = tiny_engine.prepare_chat(QUESTION, max_new_tokens=8, request_id="line", priority=BATCH, **GREEDY)
    peer = tiny_engine.prepare_chat(QUESTION, max_new_tokens=8, request_id="peer", priority=BATCH, **GREEDY)
    stepper = _stepper(tiny_engine)
    outputs = stepper.step([line], set()).outputs
    stepper.preemption.request(CHAT)
    stopped = stepper.step([peer], set())
    stepper.preemption.clear()
    assert stopped.outputs == [] and stopped.deferred == [peer]
    assert stepper.num_rows == 1 and stepper.request_ids() == {"line"}  # the peer did not join
    outputs += stepper.step(stopped.deferred, set()).outputs
    while stepper.num_rows:
        outputs += stepper.step([], set()).outputs
    assert _tokens(outputs, "line") == _alone(tiny_engine, line)
    assert _tokens(outputs, "peer") == _alone(tiny_engine, peer)


async def test_a_chat_arriving_mid_step_is_prefilled_before_the_batch_row_moves_again(tiny_engine):
    """The scheduler raises the flag when the chat arrives; the line's decode, held inside its first layer
    until then, stops at the second, and the chat's first token comes before the line's next one."""
    stepper = _stepper(tiny_engine)
    scheduler = Scheduler(stepper, ThreadPoolExecutor(1), translate_error, max_batch_rows=4, max_prefill_tokens=4096)
    layers = [m for m in tiny_engine.model.modules() if type(m).__name__.endswith("DecoderLayer")]
    assert len(layers) >= 2  # the stop happens at the layer after the one held
    holding, inside, release = threading.Event(), threading.Event(), threading.Event()

    def hold(module, args):
        if holding.is_set() and not inside.is_set():
            inside.set()
            release.wait(HANG_S)

    handle = layers[0].register_forward_pre_hook(hold)
    line_req = tiny_engine.prepare_chat(QUESTION, max_new_tokens=30, request_id="line", priority=BATCH, **GREEDY)
    chat_req = tiny_engine.prepare_chat(QUESTION, max_new_tokens=4, request_id="chat", priority=CHAT, **GREEDY)
    arrivals: list[str] = []
    tokens: dict[str, list[int]] = {"line": [], "chat": []}

    async def follow(name, stream):
        async for delta in stream:
            arrivals.append(name)
            tokens[name] += delta.token_ids

    try:
        line = scheduler.generate(line_req)
        tokens["line"] += (await line.__anext__()).token_ids
        holding.set()
        assert await asyncio.to_thread(inside.wait, HANG_S)  # a decode of the line is inside its first layer
        following = [asyncio.ensure_future(follow("line", line))]
        await asyncio.sleep(0)  # it takes the line's tokens routed before the held step, then waits
        before = len(arrivals)
        following.append(asyncio.ensure_future(follow("chat", scheduler.generate(chat_req))))
        await asyncio.sleep(0)  # the chat is queued and the flag raised
        release.set()
        await asyncio.wait_for(asyncio.gather(*following), HANG_S)
    finally:
        release.set()
        handle.remove()
        await scheduler.close()
    assert stepper.preemption.preempted_forwards == 1
    assert arrivals[before] == "chat"  # without the stop, the held decode's token came first
    assert tokens["line"] == _alone(tiny_engine, line_req) and tokens["chat"] == _alone(tiny_engine, chat_req)


def test_a_forward_carrying_a_row_as_urgent_as_the_arrival_runs_on(tiny_engine):
    """Chats already answering beside a batch keep their step: only a forward whose rows are all less urgent
    stops, so a stream of chats cannot stop every decode."""
    line = tiny_engine.prepare_chat(QUESTION, max_new_tokens=6, request_id="line", priority=BATCH, **GREEDY)
    chat = tiny_engine.prepare_chat(QUESTION, max_new_tokens=6, request_id="chat", priority=CHAT, **GREEDY)
    stepper = _stepper(tiny_engine)
    stepper.step([line], set())
    stepper.step([chat], set())  # the chat's prefill joins it to the line's batch
    stepper.preemption.request(CHAT)
    assert sorted(rid for rid, _ in stepper.step([], set()).outputs) == ["chat", "line"]
    assert stepper.preemption.preempted_forwards == 0


def _held_first_layer(engine, *, prefill_only: bool):
    """A hook that holds the first decoder layer of the next forward (a prefill's, with `prefill_only`) once
    `holding` is set, until `release`; `inside` tells that it holds."""
    layers = [m for m in engine.model.modules() if type(m).__name__.endswith("DecoderLayer")]
    holding, inside, release = threading.Event(), threading.Event(), threading.Event()

    def hold(module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        if holding.is_set() and not inside.is_set() and (hidden.shape[1] > 1 or not prefill_only):
            inside.set()
            release.wait(HANG_S)

    return layers[0].register_forward_pre_hook(hold, with_kwargs=True), holding, inside, release


async def _collected(stream) -> list:
    return [delta async for delta in stream]


async def test_an_abort_that_arrives_while_its_prefill_is_stopped_ends_it_unrun(tiny_engine):
    """The peer's prefill is held inside its first layer; a chat arrives (the prefill stops at the next layer
    and the peer is handed back) and the peer is aborted meanwhile: it ends as `abort`, never prefilled again."""
    stepper = _stepper(tiny_engine)
    scheduler = Scheduler(stepper, ThreadPoolExecutor(1), translate_error, max_batch_rows=4, max_prefill_tokens=4096)
    handle, holding, inside, release = _held_first_layer(tiny_engine, prefill_only=True)
    line_req = tiny_engine.prepare_chat(QUESTION, max_new_tokens=12, request_id="line", priority=BATCH, **GREEDY)
    peer_req = tiny_engine.prepare_chat(QUESTION, max_new_tokens=8, request_id="peer", priority=BATCH, **GREEDY)
    chat_req = tiny_engine.prepare_chat(QUESTION, max_new_tokens=4, request_id="chat", priority=CHAT, **GREEDY)
    try:
        line = scheduler.generate(line_req)
        line_tokens = list((await line.__anext__()).token_ids)  # a running row: its steps are decodes
        holding.set()
        peer = asyncio.ensure_future(_collected(scheduler.generate(peer_req)))
        assert await asyncio.to_thread(inside.wait, HANG_S)  # the peer's prefill is inside its first layer
        chat = asyncio.ensure_future(_collected(scheduler.generate(chat_req)))
        await asyncio.sleep(0)  # the chat is queued and the flag raised
        await scheduler.abort("peer")
        release.set()
        peer_deltas, chat_deltas, rest = await asyncio.wait_for(asyncio.gather(peer, chat, _collected(line)), HANG_S)
    finally:
        release.set()
        handle.remove()
        await scheduler.close()
    assert stepper.preemption.preempted_forwards == 1
    assert [(d.finish_reason, d.token_ids) for d in peer_deltas] == [("abort", ())]
    assert [t for d in chat_deltas for t in d.token_ids] == _alone(tiny_engine, chat_req)
    assert line_tokens + [t for d in rest for t in d.token_ids] == _alone(tiny_engine, line_req)


async def test_a_chat_that_cannot_join_the_next_step_does_not_stop_the_step_in_flight(tiny_engine):
    """A prompt over the prefill budget waits for the batch to drain: stopping the line's decodes for it would
    gain it nothing, and each such arrival would stop them again."""
    stepper = _stepper(tiny_engine)
    long_prompt = [{"role": "user", "content": "word " * 40}]
    oversized = tiny_engine.prepare_chat(long_prompt, max_new_tokens=2, request_id="long", priority=CHAT, **GREEDY)
    line_req = tiny_engine.prepare_chat(QUESTION, max_new_tokens=6, request_id="line", priority=BATCH, **GREEDY)
    budget = oversized.prompt_length - 1
    assert line_req.prompt_length <= budget
    scheduler = Scheduler(stepper, ThreadPoolExecutor(1), translate_error, max_batch_rows=4, max_prefill_tokens=budget)
    handle, holding, inside, release = _held_first_layer(tiny_engine, prefill_only=False)
    try:
        line = scheduler.generate(line_req)
        line_tokens = list((await line.__anext__()).token_ids)
        holding.set()
        following = asyncio.ensure_future(_collected(line))
        assert await asyncio.to_thread(inside.wait, HANG_S)  # a decode of the line is inside its first layer
        waiting = asyncio.ensure_future(_collected(scheduler.generate(oversized)))
        await asyncio.sleep(0)  # queued behind the line's batch
        release.set()
        rest, long_deltas = await asyncio.wait_for(asyncio.gather(following, waiting), HANG_S)
    finally:
        release.set()
        handle.remove()
        await scheduler.close()
    assert stepper.preemption.preempted_forwards == 0
    assert line_tokens + [t for d in rest for t in d.token_ids] == _alone(tiny_engine, line_req)
    assert [t for d in long_deltas for t in d.token_ids] == _alone(tiny_engine, oversized)
