"""The engine contract, held against every engine that implements `BaseEngine`.

Each backend's own file tests what only it does (parity with HF, LoRA, scores, SGLang's n-children);
what every engine promises a caller is tested here, once. Where engines differ (the echo engine's
answer is its prompt, the SGLang stand-in's a canned text), the difference is a field of `EngineCase`.
"""

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from engines.base import BaseEngine
from engines.errors import EngineError, InvalidRequest

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = {"temperature": 0}
# SmolLM2's greedy answer to this loops ("He was the king of a kingdom. He was ...") without ending.
DRAGON = "Write a long story about a dragon."


def _hf_running(engine) -> int:
    return engine._scheduler.num_inflight + engine._scheduler._stepper.num_rows


def _vllm_running(engine) -> int:
    return engine._engine.get_num_unfinished_requests()


def _sglang_running(engine) -> int:
    # the stand-in keeps an aborted request's state until its next step, which never comes
    return sum(not state.abort_requested for state in engine._engine.tokenizer_manager.rid_to_state.values())


def _echo_running(engine) -> int:
    return len(engine._aborted)


def _hf_rows(engine) -> int:
    return engine._scheduler._max_batch_rows


def _vllm_max_num_seqs(engine) -> int:
    return engine._engine.vllm_config.scheduler_config.max_num_seqs


def _sglang_max_running(engine) -> int:
    return engine._engine.server_args.max_running_requests


@dataclass(frozen=True)
class EngineCase:
    """One engine under the contract, and what differs between engines, written out."""

    fixture: str
    question_prompt_length: int  # QUESTION's tokens after the engine's chat template
    running_question: str  # a user message whose answer cannot end before the test aborts it...
    runs_past_tokens: int  # ...checked first: its greedy answer runs past this many tokens
    count_running: Callable[[BaseEngine], int]  # requests the backend still holds
    capacity: Callable[[BaseEngine], int]  # what the backend itself runs at once, read from its own config


CASES = [
    # The HF scheduler steps at most twice between handing out a delta and taking an abort.
    pytest.param(EngineCase("tiny_engine", 37, DRAGON, 32, _hf_running, _hf_rows), id="huggingface"),
    # vLLM's engine core runs ahead of the consumer by a few tokens; 64 are checked.
    pytest.param(EngineCase("vllm_engine", 37, DRAGON, 64, _vllm_running, _vllm_max_num_seqs), id="vllm"),
    # The stand-in steps only when the engine pulls a chunk, and the engine looks for an abort first.
    pytest.param(EngineCase("sglang_engine", 37, DRAGON, 8, _sglang_running, _sglang_max_running), id="sglang"),
    # The echo engine's answer is its prompt: "[hold]" stops it until it is aborted.
    pytest.param(EngineCase("echo_engine", 8, "Once [hold] upon a time", 1, _echo_running, lambda _: 64), id="echo"),
]


@pytest.fixture(params=CASES)
def case(request) -> EngineCase:
    return request.param


@pytest.fixture
def engine(case, request) -> BaseEngine:
    return request.getfixturevalue(case.fixture)


def test_the_engine_reports_what_its_backend_runs_at_once(case, engine):
    # what a worker admits (worker/admission.py): the backend's own limit, after its defaults applied
    assert engine.capacity == case.capacity(engine) >= 1


async def test_chat_gives_one_response_per_sequence(case, engine):
    responses = await engine.chat(QUESTION, n=3, max_new_tokens=5)
    assert len(responses) == 3
    for response in responses:
        assert response.prompt_length == case.question_prompt_length
        assert 1 <= response.response_length <= 5
        assert response.finish_reason in ("stop", "length")


async def test_joined_stream_equals_chat(engine):
    messages = [{"role": "user", "content": "Name three colors."}]
    [response] = await engine.chat(messages, max_new_tokens=20, **GREEDY)
    pieces = [piece async for piece in engine.stream_chat(messages, max_new_tokens=20, **GREEDY)]
    assert len(pieces) > 1
    assert "".join(pieces) == response.response_text


async def test_a_stop_string_ends_the_answer_without_showing_it(engine):
    [full] = await engine.chat(QUESTION, max_new_tokens=24, **GREEDY)
    text = full.response_text
    start = len(text) // 2
    stop = text[start : start + 3]
    cut = text.index(stop)
    [stopped] = await engine.chat(QUESTION, max_new_tokens=24, stop=[stop], **GREEDY)
    assert (stopped.response_text, stopped.finish_reason) == (text[:cut], "stop")
    assert stopped.response_length < full.response_length
    pieces = [piece async for piece in engine.stream_chat(QUESTION, max_new_tokens=24, stop=stop, **GREEDY)]
    assert "".join(pieces) == text[:cut]


async def test_max_new_tokens_ends_the_answer_with_exactly_that_many_tokens(engine):
    [response] = await engine.chat(QUESTION, max_new_tokens=3, **GREEDY)
    assert (response.response_length, response.finish_reason) == (3, "length")


async def test_abort_ends_a_running_request_and_the_engine_keeps_serving(case, engine):
    running = [{"role": "user", "content": case.running_question}]
    [opening] = await engine.chat(running, max_new_tokens=case.runs_past_tokens, **GREEDY)
    assert opening.finish_reason == "length"  # so nothing but the abort can end the request below
    request = engine.prepare_chat(running, max_new_tokens=engine.context_length, **GREEDY)  # clipped to the context
    deltas = engine.generate(request)
    first = await anext(deltas)
    await engine.abort(request.request_id)
    rest = [delta async for delta in deltas]
    assert [first.finish_reason, *(delta.finish_reason for delta in rest)] == [None] * len(rest) + ["abort"]
    [after] = await engine.chat(QUESTION, max_new_tokens=3, **GREEDY)
    assert after.finish_reason == "length"
    assert case.count_running(engine) == 0


async def test_a_consumer_that_closes_generate_early_aborts_the_request(case, engine):
    request = engine.prepare_chat(
        [{"role": "user", "content": case.running_question}], max_new_tokens=engine.context_length, **GREEDY
    )
    deltas = engine.generate(request)
    await anext(deltas)
    await deltas.aclose()
    # One more request runs to its end: every engine has handled the abort by then.
    [after] = await engine.chat(QUESTION, max_new_tokens=3, **GREEDY)
    assert after.finish_reason == "length"
    assert case.count_running(engine) == 0


@pytest.mark.parametrize(
    ("messages", "params", "field"),
    [
        ([], {}, "messages"),
        ([{"role": "wizard", "content": "hi"}], {}, "messages.0.role"),
        ([{"role": "assistant", "content": "hi"}], {}, "messages"),
        (QUESTION, {"temperature": -1}, "temperature"),
        (QUESTION, {"top_p": 0}, "top_p"),
        (QUESTION, {"max_tokens": 5}, "max_tokens"),
        (QUESTION, {"max_length": 1}, "max_length"),
        (QUESTION, {"length_penalty": 2.0}, "length_penalty"),
        (QUESTION, {"stop": [""]}, "stop.0"),
        (QUESTION, {"seed": 2**64}, "seed"),
        (QUESTION, {"temperature": "0.5"}, "temperature"),
        (QUESTION, {"n": True}, "n"),
        (QUESTION, {"temperature": float("nan")}, "temperature"),
        (QUESTION, {"stop": ["x"] * 17}, "stop"),
        (QUESTION, {"adapter": "nope"}, "adapter"),
        ([{"role": "user", "content": [{"type": "image", "image": "cat.png"}]}], {}, "messages.0.content.0"),
        (QUESTION, {"images": ["cat.png"]}, "messages.0.content.0"),
    ],
)
async def test_a_bad_request_is_refused_by_field_before_any_backend_work(case, engine, messages, params, field):
    with pytest.raises(InvalidRequest) as caught:
        await engine.chat(messages, **params)
    assert caught.value.field == field
    assert case.count_running(engine) == 0


async def test_stream_chat_refuses_n_above_one(engine):
    with pytest.raises(InvalidRequest) as caught:
        async for _ in engine.stream_chat(QUESTION, n=2):
            pass
    assert caught.value.field == "num_return_sequences"


async def test_a_generation_engine_refuses_scoring(engine):
    assert engine.can_generate
    with pytest.raises(InvalidRequest) as caught:
        await engine.get_scores(["text"])
    assert caught.value.field == "model"


# Requests that could break a shared step, each beside healthy ones. Each is refused when prepared (by
# name), made harmless there, or fails alone: it never fails a batch-mate.
POISONS = [
    pytest.param({"seed": 2**64}, id="seed-past-int64"),  # torch's generator overflows: refused when prepared
    pytest.param({"temperature": 1e-300}, id="tiny-temperature"),  # logits / 1e-300 overflow: greedy instead
    # logits / 1e-40 overflow float32: this row's probabilities turn to NaN inside the shared sampling step
    pytest.param({"temperature": 1.0, "repetition_penalty": 1e-40}, id="runaway-penalty"),
    pytest.param({"temperature": 1.0, "top_k": 10**9}, id="top-k-past-the-vocabulary"),
]
HEALTHY = ["Name three colors.", "What is the capital of France?", "Count to five."]


@pytest.mark.parametrize("poison", POISONS)
async def test_a_poisoned_request_never_fails_its_batch_mates(engine, poison):
    async def poisoned():
        try:
            return await engine.chat(QUESTION, max_new_tokens=8, **poison)
        except (InvalidRequest, EngineError) as error:  # refused by name, or failed alone
            return error

    healthy = [engine.chat([{"role": "user", "content": text}], max_new_tokens=8, **GREEDY) for text in HEALTHY]
    *answers, _ = await asyncio.gather(*healthy, poisoned())  # all at once: they share the engine's steps
    for [response] in answers:
        assert response.finish_reason in ("stop", "length") and response.response_length >= 1


# -- the sampling extras and constrained output: honoured, or refused by name ------------------

WEATHER = {
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
}
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


async def _chat_or_refusal(engine, messages=QUESTION, **params):
    try:
        return await engine.chat(messages, **params)
    except InvalidRequest as refusal:
        return refusal


async def test_logprobs_come_one_per_generated_token_with_the_alternatives_asked_for(engine):
    [response] = await engine.chat(QUESTION, max_new_tokens=6, logprobs=2, **GREEDY)
    assert len(response.logprobs) == response.response_length
    for entry in response.logprobs:
        assert entry.logprob <= 0 and len(entry.top_logprobs) <= 2
        assert all(alt.logprob <= entry.top_logprobs[0].logprob for alt in entry.top_logprobs)
    [plain] = await engine.chat(QUESTION, max_new_tokens=6, **GREEDY)
    assert plain.logprobs is None and plain.response_text == response.response_text  # asking changes no token


async def test_ignore_eos_runs_to_max_new_tokens_and_min_tokens_holds_the_end_back(engine):
    [response] = await engine.chat(QUESTION, max_new_tokens=40, ignore_eos=True, **GREEDY)
    assert (response.response_length, response.finish_reason) == (40, "length")
    [response] = await engine.chat(QUESTION, max_new_tokens=40, min_tokens=20, **GREEDY)
    assert response.response_length >= 20


async def test_a_json_schema_answer_matches_its_schema_or_is_refused_by_name(case, engine):
    outcome = await _chat_or_refusal(
        engine, max_new_tokens=48, response_format={"type": "json_schema", "schema": PERSON}, **GREEDY
    )
    if isinstance(outcome, InvalidRequest):
        assert case.fixture == "echo_engine" and outcome.field == "response_format"  # no logits to constrain
        return
    [response] = outcome
    if response.finish_reason == "stop":  # a random model may ramble to max_new_tokens inside the JSON
        person = json.loads(response.response_text)
        assert set(person) == {"name", "age"} and isinstance(person["age"], int)


async def test_a_forced_tool_call_is_a_call_of_that_tool_or_is_refused_by_name(case, engine):
    weather = [{"role": "user", "content": "What is the weather in Paris?"}]
    for choice in ("required", {"name": "get_weather"}):
        outcome = await _chat_or_refusal(engine, weather, tools=[WEATHER], tool_choice=choice, max_new_tokens=48)
        if isinstance(outcome, InvalidRequest):
            assert case.fixture == "echo_engine" and outcome.field == "tool_choice"  # no logits to force a call
            continue
        [response] = outcome
        calls = response.tool_calls  # "required" allows several (parallel calls are on); a named choice one
        assert len(calls) >= 1 and {call.name for call in calls} == {"get_weather"} and response.response_text == ""
        if response.finish_reason in ("stop", "tool_calls"):
            assert all(isinstance(json.loads(call.arguments)["location"], str) for call in calls)
            assert response.finish_reason == ("tool_calls" if choice == "required" else "stop")
            assert choice == "required" or len(calls) == 1


async def test_a_completion_continues_a_raw_prompt_without_the_chat_template(case, engine):
    request = engine.prepare_completion("The capital of France is", max_new_tokens=4, **GREEDY)
    assert "user" not in request.prompt_text and request.prompt_text == "The capital of France is"
    deltas = [delta async for delta in engine.generate(request)]
    assert sum(len(delta.token_ids) for delta in deltas) >= 1
    with pytest.raises(InvalidRequest) as caught:
        engine.prepare_completion("", max_new_tokens=4)
    assert caught.value.field == "prompt"
