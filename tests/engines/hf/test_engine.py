"""The HF engine on a tiny random-weight Llama: every method, every parameter, every refusal."""

import asyncio

import pytest
import torch
from transformers import AutoModelForCausalLM

from engines import load_engine
from engines.base import ResponseBuilder
from engines.errors import InvalidRequest

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = {"temperature": 0}


async def _deltas(engine, messages=QUESTION, **params):
    return [delta async for delta in engine.generate(engine.prepare_chat(messages, **params))]


async def test_chat_counts_tokens_and_reports_length(tiny_engine):
    [response] = await tiny_engine.chat(QUESTION, max_new_tokens=8, **GREEDY)
    prompt_ids = tiny_engine.tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True, return_dict=False)
    assert response.prompt_length == len(prompt_ids)
    assert response.response_length == 8
    assert response.finish_reason == "length"
    assert response.response_text


async def test_joined_stream_equals_chat(tiny_engine):
    [response] = await tiny_engine.chat(QUESTION, max_new_tokens=20, **GREEDY)
    pieces = [piece async for piece in tiny_engine.stream_chat(QUESTION, max_new_tokens=20, **GREEDY)]
    assert len(pieces) > 1
    assert "".join(pieces) == response.response_text


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


async def test_stop_string_ends_chat_and_stream_without_showing_it(tiny_engine):
    [full] = await tiny_engine.chat(QUESTION, max_new_tokens=24, **GREEDY)
    text = full.response_text
    start = len(text) // 2
    stop = text[start : start + 3]
    cut = text.index(stop)
    [stopped] = await tiny_engine.chat(QUESTION, max_new_tokens=24, stop=[stop], **GREEDY)
    assert stopped.finish_reason == "stop"
    assert stopped.response_text == text[:cut]
    assert stopped.response_length < full.response_length
    pieces = [p async for p in tiny_engine.stream_chat(QUESTION, max_new_tokens=24, stop=stop, **GREEDY)]
    assert "".join(pieces) == text[:cut]


async def test_abort_ends_a_running_request_within_a_step(tiny_engine):
    request = tiny_engine.prepare_chat(QUESTION, max_new_tokens=400, request_id="to-abort", **GREEDY)
    builder = ResponseBuilder(1, request.prompt_length)
    async for delta in tiny_engine.generate(request):
        builder.add(delta)
        if builder.completion_tokens == 3:
            await tiny_engine.abort("to-abort")
    [response] = builder.responses()
    assert response.finish_reason == "abort"
    assert 3 <= response.response_length <= 5


async def test_abort_of_a_queued_request_leaves_the_running_one(tiny_llama_dir):
    engine = load_engine("huggingface", tiny_llama_dir, max_batch_size=1)  # the second request must queue
    try:
        running = engine.generate(engine.prepare_chat(QUESTION, max_new_tokens=30, request_id="running", **GREEDY))
        await running.__anext__()
        queued = engine.generate(engine.prepare_chat(QUESTION, max_new_tokens=30, request_id="queued", **GREEDY))
        waiting = asyncio.ensure_future(queued.__anext__())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await engine.abort("queued")
        aborted = await waiting
        assert (aborted.finish_reason, aborted.token_ids, aborted.text) == ("abort", (), "")
        rest = [delta async for delta in running]
        assert rest[-1].finish_reason == "length" and 1 + len(rest) == 30
    finally:
        await engine.close()


async def test_closing_a_stream_early_frees_its_rows(tiny_engine):
    pieces = tiny_engine.stream_chat(QUESTION, max_new_tokens=400, **GREEDY)
    async for _ in pieces:
        break
    await pieces.aclose()
    scheduler = tiny_engine._scheduler
    for _ in range(100):
        if scheduler._stepper.num_rows == 0:
            break
        await asyncio.sleep(0.02)
    assert scheduler.num_inflight == 0
    assert scheduler._stepper.num_rows == 0


async def test_concurrent_requests_equal_their_solo_answers(tiny_engine):
    prompts = [[{"role": "user", "content": "word " * i}] for i in range(1, 7)]
    solo = [await tiny_engine.chat(p, max_new_tokens=16, **GREEDY) for p in prompts]
    together = await asyncio.gather(*[tiny_engine.chat(p, max_new_tokens=16, **GREEDY) for p in prompts])
    assert together == solo


async def test_a_request_joins_a_running_batch_without_waiting_for_it(tiny_engine):
    long_stream = tiny_engine.generate(tiny_engine.prepare_chat(QUESTION, max_new_tokens=300, **GREEDY))
    await long_stream.__anext__()
    short = await tiny_engine.chat([{"role": "user", "content": "hi"}], max_new_tokens=5, **GREEDY)
    remaining = [delta async for delta in long_stream]
    assert short[0].response_length == 5
    assert len(remaining) > 100  # the long request was still running when the short one finished
    assert remaining[-1].finish_reason == "length"


@pytest.mark.parametrize(
    ("messages", "params", "field"),
    [
        ([], {}, "messages"),
        ([{"role": "wizard", "content": "hi"}], {}, "messages.0.role"),
        ([{"role": "user", "content": "word " * 3000}], {}, "messages"),
        (QUESTION, {"temperature": -1}, "temperature"),
        (QUESTION, {"max_tokens": 5}, "max_tokens"),
        (QUESTION, {"adapter": "nope"}, "adapter"),
        ([{"role": "user", "content": [{"type": "image", "image": "cat.png"}]}], {}, "messages.0.content.0"),
        (QUESTION, {"images": ["cat.png"]}, "messages.0.content.0"),
    ],
)
async def test_bad_requests_fail_before_any_model_work(tiny_engine, messages, params, field):
    with pytest.raises(InvalidRequest) as caught:
        await tiny_engine.chat(messages, **params)
    assert caught.value.field == field
    assert tiny_engine._scheduler.num_inflight == 0


async def test_stream_chat_refuses_n_above_one(tiny_engine):
    with pytest.raises(InvalidRequest) as caught:
        async for _ in tiny_engine.stream_chat(QUESTION, n=2):
            pass
    assert caught.value.field == "num_return_sequences"


async def test_a_generation_model_refuses_scoring(tiny_engine):
    assert tiny_engine.can_generate
    with pytest.raises(InvalidRequest, match="use chat"):
        await tiny_engine.get_scores(["text"])
