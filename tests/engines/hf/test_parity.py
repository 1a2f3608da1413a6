"""The HF engine on the real SmolLM2 against plain transformers `generate`."""

import asyncio

import pytest
import torch
from transformers import AutoModelForCausalLM

PROMPTS = [
    "What is the capital of France?",
    "Name three colors.",
    "Write one sentence about the sea.",
]
GREEDY = {"temperature": 0}


@pytest.fixture(scope="module")
def reference_model(smollm2_dir):
    return AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32)


def _generate_ids(model, tokenizer, question, max_new_tokens):
    prompt_ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, return_dict=False
    )
    output = model.generate(torch.tensor([prompt_ids]), do_sample=False, max_new_tokens=max_new_tokens)
    return output[0, len(prompt_ids) :].tolist()


@pytest.mark.parametrize("question", PROMPTS)
async def test_greedy_chat_equals_plain_generate_token_for_token(smollm2_engine, reference_model, question):
    messages = [{"role": "user", "content": question}]
    expected = _generate_ids(reference_model, smollm2_engine.tokenizer, question, 40)
    request = smollm2_engine.prepare_chat(messages, max_new_tokens=40, **GREEDY)
    deltas = [delta async for delta in smollm2_engine.generate(request)]
    assert [token for delta in deltas for token in delta.token_ids] == expected
    [response] = await smollm2_engine.chat(messages, max_new_tokens=40, **GREEDY)
    assert response.response_text == smollm2_engine.tokenizer.decode(expected, skip_special_tokens=True)
    assert response.response_length == len(expected)
    ended_on_eos = expected[-1] in smollm2_engine.stop_token_ids
    assert response.finish_reason == ("stop" if ended_on_eos else "length")


async def test_smollm2_knows_paris_and_streams_it(smollm2_engine):
    messages = [{"role": "user", "content": PROMPTS[0]}]
    [response] = await smollm2_engine.chat(messages, **GREEDY)
    assert response.response_text == "The capital of France is Paris."
    assert response.finish_reason == "stop"
    pieces = [piece async for piece in smollm2_engine.stream_chat(messages, **GREEDY)]
    assert "".join(pieces) == response.response_text


async def test_stop_string_and_length_on_smollm2(smollm2_engine):
    messages = [{"role": "user", "content": PROMPTS[0]}]
    [stopped] = await smollm2_engine.chat(messages, stop=[" is"], **GREEDY)
    assert (stopped.response_text, stopped.finish_reason) == ("The capital of France", "stop")
    [short] = await smollm2_engine.chat(messages, max_new_tokens=3, **GREEDY)
    assert (short.response_length, short.finish_reason) == (3, "length")


async def test_abort_stops_a_running_smollm2_stream(smollm2_engine):
    request = smollm2_engine.prepare_chat(
        [{"role": "user", "content": "Write a long story about a dragon."}], max_new_tokens=300, request_id="dragon"
    )
    deltas = []
    async for delta in smollm2_engine.generate(request):
        deltas.append(delta)
        if len(deltas) == 4:
            await smollm2_engine.abort("dragon")
    assert deltas[-1].finish_reason == "abort"
    assert len(deltas) <= 6


async def test_batched_answers_equal_solo_answers(smollm2_engine):
    conversations = [[{"role": "user", "content": q}] for q in PROMPTS]
    solo = [await smollm2_engine.chat(c, max_new_tokens=24, **GREEDY) for c in conversations]
    together = await asyncio.gather(*[smollm2_engine.chat(c, max_new_tokens=24, **GREEDY) for c in conversations])
    assert together == solo
