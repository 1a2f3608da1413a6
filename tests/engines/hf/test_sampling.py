"""What the HF engine adds to sampling, per request inside a shared batch: a grammar's constraint, logit bias,
OpenAI's penalties, and logprobs from the model's raw logits (on the tiny random-weight Llama: a model that
knows nothing still writes valid JSON when its grammar says so)."""

import dataclasses
import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from engines.hf.sampling import RequestSampler
from engines.params import ResolvedParams

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = {"temperature": 0}
SHORT_SCHEMA = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}, "color": {"enum": ["red", "blue"]}},
    "required": ["ok", "color"],
}


async def test_a_random_model_writes_json_its_grammar_accepts_beside_a_free_request(tiny_engine):
    constrained = tiny_engine.chat(
        QUESTION, max_new_tokens=40, response_format={"type": "json_schema", "schema": SHORT_SCHEMA}
    )
    free = tiny_engine.chat(QUESTION, max_new_tokens=40, **GREEDY)
    alone = await tiny_engine.chat(QUESTION, max_new_tokens=40, **GREEDY)
    [[shaped], [unshaped]] = [await constrained, await free]
    answer = json.loads(shaped.response_text)
    assert set(answer) == {"ok", "color"} and answer["color"] in ("red", "blue") and shaped.finish_reason == "stop"
    assert unshaped == alone[0]  # the free request shared the steps and kept its own answer


async def test_logprobs_are_the_models_raw_log_probabilities(tiny_engine, tiny_llama_dir):
    [response] = await tiny_engine.chat(QUESTION, max_new_tokens=1, logprobs=3, **GREEDY)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    prompt_ids = tiny_engine.prepare_chat(QUESTION).prompt_ids
    expected = torch.log_softmax(model(torch.tensor([prompt_ids])).logits[0, -1], dim=-1)
    [first] = response.logprobs
    assert first.logprob == pytest.approx(expected[first.token_id].item(), abs=1e-4)
    assert [alt.token_id for alt in first.top_logprobs] == expected.topk(3).indices.tolist()
    assert first.token_id == first.top_logprobs[0].token_id  # greedy: the likeliest


async def test_a_logit_bias_of_100_makes_a_token_certain(tiny_engine):
    token = tiny_engine.tokenizer("Paris", add_special_tokens=False)["input_ids"][0]
    [response] = await tiny_engine.chat(QUESTION, max_new_tokens=5, logit_bias={token: 100}, **GREEDY)
    assert response.response_text == tiny_engine.tokenizer.decode([token] * 5)


async def test_min_tokens_holds_the_end_of_turn_back_and_ignore_eos_goes_past_it(tiny_engine):
    eos = tiny_engine.stop_token_ids[0]
    [ended] = await tiny_engine.chat(QUESTION, max_new_tokens=8, logit_bias={eos: 100}, **GREEDY)
    assert (ended.response_length, ended.finish_reason) == (1, "stop")  # the end of turn is certain...
    [held] = await tiny_engine.chat(QUESTION, max_new_tokens=8, logit_bias={eos: 100}, min_tokens=4, **GREEDY)
    assert (held.response_length, held.finish_reason) == (5, "stop")  # ...but not before four tokens
    [past] = await tiny_engine.chat(QUESTION, max_new_tokens=8, logit_bias={eos: 100}, ignore_eos=True, **GREEDY)
    assert (past.response_length, past.finish_reason) == (8, "length")


async def test_a_stop_string_begun_before_min_tokens_and_ended_after_stops_the_answer(tiny_engine):
    token = tiny_engine.tokenizer("Paris", add_special_tokens=False)["input_ids"][0]
    word = tiny_engine.tokenizer.decode([token])
    stop = word[-1] + word[0]  # the last character of the first token and the first of the second
    assert stop not in word
    [answer] = await tiny_engine.chat(
        QUESTION, max_new_tokens=2, min_tokens=1, stop=[stop], logit_bias={token: 100}, **GREEDY
    )
    assert (answer.response_text, answer.finish_reason) == (word[:-1], "stop")


def test_presence_and_frequency_penalties_are_openais_formula_over_generated_tokens_only():
    params = ResolvedParams(
        do_sample=False, temperature=0.0, top_p=1.0, top_k=0, max_new_tokens=8, repetition_penalty=1.0, n=1,
        seed=None, stop=(), stop_token_ids=(), skip_special_tokens=True,
    )  # fmt: skip
    params = dataclasses.replace(params, presence_penalty=0.5, frequency_penalty=1.0)
    sampler = RequestSampler(params, torch.device("cpu"), prompt_length=2)
    logits = torch.zeros(1, 5)
    history = torch.tensor([[3, 3, 1, 1, 2]])  # the prompt's 3s do not count; 1 twice, 2 once
    penalised = sampler._occurrence_penalties(logits.clone(), history[:, 2:])
    assert penalised.tolist() == [[0.0, -2.5, -1.5, 0.0, 0.0]]
