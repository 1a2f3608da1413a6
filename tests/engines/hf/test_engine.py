"""The HF engine on a tiny random-weight Llama: what only it does (its batching, its sampling, its queue).
What every engine promises is tested in tests/engines/test_contract.py."""

import asyncio

import pytest
import torch
from transformers import AutoModelForCausalLM

from engines import load_engine
from engines.errors import EngineError, InvalidRequest
from engines.hf.sampling import RequestSampler

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = {"temperature": 0}


async def _deltas(engine, messages=QUESTION, **params):
    return [delta async for delta in engine.generate(engine.prepare_chat(messages, **params))]


async def test_greedy_equals_plain_generate_with_repetition_penalty(tiny_engine, tiny_llama_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    prompt_ids = tiny_engine.tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True, return_dict=False)
    for penalty in (1.0, 1.5):
        expected = model.generate(
            torch.tensor([prompt_ids]), do_sample=False, max_new_tokens=16, repetition_penalty=penalty
        )[0, len(prompt_ids) :].tolist()
        deltas = await _deltas(tiny_engine, max_new_tokens=16, repetition_penalty=penalty, **GREEDY)
        assert [t for d in deltas for t in d.token_ids] == expected


async def test_n_sequences_with_a_seed_are_reproducible(tiny_engine):
    first = await tiny_engine.chat(QUESTION, n=3, seed=7, max_new_tokens=12)
    again = await tiny_engine.chat(QUESTION, n=3, seed=7, max_new_tokens=12)
    other = await tiny_engine.chat(QUESTION, n=3, seed=8, max_new_tokens=12)
    assert len(first) == 3
    assert first == again
    assert first != other
    assert len({r.response_text for r in first}) > 1  # n > 1 samples


async def test_seeded_answer_does_not_depend_on_batch_neighbours(tiny_engine):
    alone = await tiny_engine.chat(QUESTION, seed=3, temperature=0.9, max_new_tokens=12)
    crowded, *_ = await asyncio.gather(
        tiny_engine.chat(QUESTION, seed=3, temperature=0.9, max_new_tokens=12),
        *[tiny_engine.chat([{"role": "user", "content": f"noise {i}"}], max_new_tokens=12) for i in range(3)],
    )
    assert crowded == alone


async def test_abort_of_a_queued_request_leaves_the_running_one(tiny_llama_dir):
    engine = load_engine("huggingface", tiny_llama_dir, max_batch_size=1)  # the second request must queue
    try:
        running = engine.generate(engine.prepare_chat(QUESTION, max_new_tokens=30, request_id="running", **GREEDY))
        await running.__anext__()
        queued = engine.generate(engine.prepare_chat(QUESTION, max_new_tokens=30, request_id="queued", **GREEDY))
        waiting = asyncio.ensure_future(queued.__anext__())
        # in the engine's queue behind the running request (a step a loop turn at most: 29 are left to it)
        while not any(request.request_id == "queued" for request in engine._scheduler._waiting):
            await asyncio.sleep(0)
        assert not waiting.done()
        await engine.abort("queued")
        aborted = await waiting
        assert (aborted.finish_reason, aborted.token_ids, aborted.text) == ("abort", (), "")
        rest = [delta async for delta in running]
        assert rest[-1].finish_reason == "length" and 1 + len(rest) == 30
    finally:
        await engine.close()


async def test_concurrent_requests_equal_their_solo_answers(tiny_engine):
    prompts = [[{"role": "user", "content": "word " * i}] for i in range(1, 7)]
    solo = [await tiny_engine.chat(p, max_new_tokens=16, **GREEDY) for p in prompts]
    together = await asyncio.gather(*[tiny_engine.chat(p, max_new_tokens=16, **GREEDY) for p in prompts])
    assert together == solo


async def test_a_request_joins_a_running_batch_without_waiting_for_it(tiny_engine):
    long_stream = tiny_engine.generate(
        tiny_engine.prepare_chat(QUESTION, max_new_tokens=300, request_id="long", **GREEDY)
    )
    await long_stream.__anext__()
    short = await tiny_engine.chat([{"role": "user", "content": "hi"}], max_new_tokens=5, **GREEDY)
    # the long request still runs when the short one has finished (its deltas wait unread: it is not paced by them)
    assert "long" in tiny_engine._scheduler._stepper.request_ids()
    remaining = [delta async for delta in long_stream]
    assert short[0].response_length == 5
    assert remaining[-1].finish_reason == "length"


async def test_a_prompt_longer_than_the_context_is_refused_before_any_model_work(tiny_engine):
    with pytest.raises(InvalidRequest) as caught:
        await tiny_engine.chat([{"role": "user", "content": "word " * tiny_engine.context_length}])
    assert caught.value.field == "messages"
    assert tiny_engine._scheduler.num_inflight == 0


async def test_a_request_whose_sampling_fails_inside_a_shared_step_fails_alone(tiny_engine, monkeypatch):
    sample = RequestSampler.__call__

    def failing_for_seed_13(self, logits, history, generated):
        if self._generator is not None and self._generator.initial_seed() == 13:
            raise RuntimeError("this request's sampling broke")
        return sample(self, logits, history, generated)

    monkeypatch.setattr(RequestSampler, "__call__", failing_for_seed_13)
    alone = await tiny_engine.chat(QUESTION, max_new_tokens=12, **GREEDY)
    doomed = tiny_engine.chat(QUESTION, max_new_tokens=12, temperature=1.0, seed=13)
    mates = [tiny_engine.chat(QUESTION, max_new_tokens=12, **GREEDY) for _ in range(3)]
    outcomes = await asyncio.gather(doomed, *mates, return_exceptions=True)
    assert isinstance(outcomes[0], EngineError) and "sampling broke" in str(outcomes[0])
    assert outcomes[1:] == [alone] * 3  # the batch-mates finished, token for token as alone
