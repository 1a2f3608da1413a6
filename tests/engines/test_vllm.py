"""The vLLM engine against the real vLLM (CPU build), started once per session for each runner.

Parity is checked against the HF engine on the same SmolLM2 checkpoint, in float32 on both sides.
"""

import asyncio
import dataclasses

import pytest

from engines import load_engine
from engines.base import ChatRequest
from engines.constraints import DecodingConstraint
from engines.errors import InvalidRequest
from engines.params import ResolvedParams
from engines.vllm import VllmEngineArgs, check_vllm_config, engine_kwargs, engine_prompt, sampling_kwargs
from engines.vllm_scheduling import UrgentFirst

PROMPTS = ["What is the capital of France?", "Name three colors.", "Write one sentence about the sea."]
GREEDY = {"temperature": 0}


# -- translation, without starting vLLM ------------------------------------------------------


class _Config:
    def __init__(self, architectures=("LlamaForCausalLM",), quantization_config=None):
        self.architectures = list(architectures)
        self.quantization_config = quantization_config


def test_engine_args_follow_llamafactory_and_the_machine():
    cpu = engine_kwargs("m", VllmEngineArgs(), _Config(), num_gpus=0)
    assert (cpu["dtype"], cpu["tensor_parallel_size"], cpu["runner"]) == ("float32", 1, "generate")
    gpu = engine_kwargs("m", VllmEngineArgs(), _Config(), num_gpus=4)
    assert (gpu["dtype"], gpu["tensor_parallel_size"]) == ("auto", 4)  # every GPU the worker is pinned to
    gptq = engine_kwargs("m", VllmEngineArgs(), _Config(quantization_config={"quant_method": "gptq"}), num_gpus=1)
    assert gptq["dtype"] == "float16"
    scorer = engine_kwargs("m", VllmEngineArgs(), _Config(["LlamaForSequenceClassification"]), num_gpus=1)
    assert scorer["runner"] == "pooling"


def test_adapters_turn_lora_on_and_overrides_come_last():
    args = VllmEngineArgs(
        adapters={"a": "/x"}, max_lora_rank=32, tensor_parallel_size=2, vllm_config={"max_num_seqs": 8}
    )
    kwargs = engine_kwargs("m", args, _Config(), num_gpus=4)
    assert (kwargs["enable_lora"], kwargs["max_lora_rank"], kwargs["tensor_parallel_size"]) == (True, 32, 2)
    assert kwargs["max_num_seqs"] == 8


def test_unknown_vllm_config_keys_are_refused_by_name():
    from vllm import AsyncEngineArgs

    known = {field.name for field in dataclasses.fields(AsyncEngineArgs)}
    check_vllm_config({"max_num_seqs": 4}, known)
    with pytest.raises(InvalidRequest) as caught:
        check_vllm_config({"max_num_seq": 4}, known)
    assert caught.value.field == "engine_args.vllm_config.max_num_seq"


def test_sampling_parameters_map_onto_vllm():
    params = ResolvedParams(
        do_sample=False, temperature=0.0, top_p=1.0, top_k=0, max_new_tokens=7, repetition_penalty=1.1,
        n=1, seed=None, stop=(), stop_token_ids=(2,), skip_special_tokens=True,
    )  # fmt: skip
    kwargs = sampling_kwargs(params)
    assert kwargs["temperature"] == 0.0 and kwargs["max_tokens"] == 7 and kwargs["stop"] is None
    assert kwargs["stop_token_ids"] == [2] and "seed" not in kwargs
    sampled = sampling_kwargs(dataclasses.replace(params, do_sample=True, temperature=0.8, n=3, seed=5, stop=("END",)))
    assert (sampled["n"], sampled["seed"], sampled["stop"]) == (3, 5, ["END"])


def test_the_extras_map_onto_vllms_own_fields():
    params = ResolvedParams(
        do_sample=True, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=7, repetition_penalty=1.0,
        n=1, seed=None, stop=(), stop_token_ids=(2,), skip_special_tokens=True, logprobs=3, presence_penalty=0.5,
        frequency_penalty=-1.0, min_p=0.1, logit_bias=((5, 10.0),), ignore_eos=True, min_tokens=4,
        constraint=DecodingConstraint.from_schema({"type": "object"}, "response_format"),
    )  # fmt: skip
    kwargs = sampling_kwargs(params)
    assert (kwargs["logprobs"], kwargs["presence_penalty"], kwargs["frequency_penalty"]) == (3, 0.5, -1.0)
    assert (kwargs["min_p"], kwargs["logit_bias"], kwargs["min_tokens"]) == (0.1, {5: 10.0}, 4)
    assert kwargs["ignore_eos"] and kwargs["stop_token_ids"] == []  # vLLM would still stop on them
    assert kwargs["structured_outputs"] == {"json": '{"type":"object"}'}
    any_json = sampling_kwargs(dataclasses.replace(params, constraint=DecodingConstraint(None, "response_format")))
    assert any_json["structured_outputs"] == {"json_object": True}


def test_a_request_with_images_goes_to_vllm_as_text_and_images():
    request = ChatRequest("r", [1, 2, 3], "<image>hi", _params(), images=("pixels",))
    prompt, tokenization = engine_prompt(request)
    assert prompt == {"prompt": "<image>hi", "multi_modal_data": {"image": ["pixels"]}}
    assert tokenization == {"add_special_tokens": False}  # the template wrote them: no second BOS
    assert engine_prompt(ChatRequest("r", [1, 2, 3], "hi", _params())) == ({"prompt_token_ids": [1, 2, 3]}, None)


def _params():
    return ResolvedParams(
        do_sample=False, temperature=0.0, top_p=1.0, top_k=0, max_new_tokens=7, repetition_penalty=1.0,
        n=1, seed=None, stop=(), stop_token_ids=(2,), skip_special_tokens=True,
    )  # fmt: skip


def test_a_misspelt_vllm_config_fails_before_vllm_starts(smollm2_dir):
    with pytest.raises(InvalidRequest) as caught:
        load_engine("vllm", smollm2_dir, vllm_config={"enforce_eagre": True})
    assert caught.value.field == "engine_args.vllm_config.enforce_eagre"


# -- the real engine ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def hf_sea_engine(smollm2_dir, sea_adapter_dir):
    engine = load_engine("huggingface", smollm2_dir, adapters={"sea": sea_adapter_dir})
    yield engine
    await engine.close()


async def _token_ids(engine, question, **params):
    request = engine.prepare_chat([{"role": "user", "content": question}], **params)
    return [token for delta in [d async for d in engine.generate(request)] for token in delta.token_ids]


async def test_greedy_tokens_equal_the_hf_engines(vllm_engine, smollm2_engine):
    agreement = []
    for question in PROMPTS:
        expected = await _token_ids(smollm2_engine, question, max_new_tokens=40, **GREEDY)
        produced = await _token_ids(vllm_engine, question, max_new_tokens=40, **GREEDY)
        same = sum(a == b for a, b in zip(expected, produced, strict=False))
        agreement.append(f"{same}/{max(len(expected), len(produced))}")
        assert produced == expected, f"{question!r}: token agreement {agreement[-1]}"
    print("vLLM vs HF greedy token agreement:", ", ".join(agreement))


async def test_vllm_answers_match_hf_responses(vllm_engine, smollm2_engine):
    messages = [{"role": "user", "content": PROMPTS[0]}]
    assert await vllm_engine.chat(messages, **GREEDY) == await smollm2_engine.chat(messages, **GREEDY)
    # stop strings: same text, same token count, same finish_reason
    assert await vllm_engine.chat(messages, stop=[" is"], **GREEDY) == await smollm2_engine.chat(
        messages, stop=[" is"], **GREEDY
    )


async def test_n_three_gives_three_reproducible_answers(vllm_engine):
    messages = [{"role": "user", "content": PROMPTS[1]}]
    first = await vllm_engine.chat(messages, n=3, seed=11, max_new_tokens=12)
    again = await vllm_engine.chat(messages, n=3, seed=11, max_new_tokens=12)
    assert len(first) == 3 and first == again


async def test_each_request_brings_its_own_adapter(vllm_engine, hf_sea_engine):
    messages = [{"role": "user", "content": PROMPTS[2]}]
    base, sea = await asyncio.gather(
        vllm_engine.chat(messages, max_new_tokens=30, **GREEDY),
        vllm_engine.chat(messages, max_new_tokens=30, adapter="sea", **GREEDY),
    )
    assert base != sea  # the adapter changes the answer...
    assert sea == await hf_sea_engine.chat(messages, max_new_tokens=30, adapter="sea", **GREEDY)  # ...as in HF
    assert base == await hf_sea_engine.chat(messages, max_new_tokens=30, **GREEDY)
    with pytest.raises(InvalidRequest) as caught:
        await vllm_engine.chat(messages, adapter="land")
    assert caught.value.field == "adapter"


async def test_a_chat_beside_less_urgent_rows_runs_alone_first_and_no_answer_changes(vllm_engine):
    """The urgent-first scheduler (engines/vllm_scheduling.py) in the running engine: the rows it makes skip a
    step come back with the same greedy tokens as when they ran without the chat."""
    assert issubclass(vllm_engine._engine.vllm_config.scheduler_config.scheduler_cls, UrgentFirst)

    def request(question, request_id, priority):
        # rows of 48 tokens whatever they say, the chat's 8: the rows are most likely still running when it arrives
        length = {"max_new_tokens": 8} if priority == 0 else {"max_new_tokens": 48, "ignore_eos": True}
        messages = [{"role": "user", "content": question}]
        return vllm_engine.prepare_chat(messages, request_id=request_id, priority=priority, **length, **GREEDY)

    async def tokens(deltas, first=()):
        return [*first, *[token async for delta in deltas for token in delta.token_ids]]

    # the rows side by side without the chat, as they run beside it below (half the steps of one after the other)
    alone = await asyncio.gather(
        *[tokens(vllm_engine.generate(request(q, f"alone-{i}", 9))) for i, q in enumerate(PROMPTS[:2])]
    )
    chat_alone = await tokens(vllm_engine.generate(request(PROMPTS[2], "chat-alone", 0)))
    lines = [vllm_engine.generate(request(q, f"line-{i}", 9)) for i, q in enumerate(PROMPTS[:2])]
    firsts = [(await anext(line)).token_ids for line in lines]  # both rows are running now
    chat = await tokens(vllm_engine.generate(request(PROMPTS[2], "chat", 0)))
    assert [await tokens(line, first) for line, first in zip(lines, firsts, strict=True)] == alone
    assert chat == chat_alone


@pytest.fixture(scope="module")  # vLLM's idle EngineCore takes a fifth of a core: stopped with this module
async def vllm_scorer(smollm2_classifier_dir):
    engine = load_engine("vllm", smollm2_classifier_dir, enforce_eager=True)
    yield engine
    await engine.close()


async def test_pooling_scores_equal_the_hf_engines(vllm_scorer, smollm2_classifier_dir):
    texts = ["Paris is the capital of France.", "The capital of France is London.", "ok", "word " * 50]
    hf = load_engine("huggingface", smollm2_classifier_dir)
    try:
        expected = await hf.get_scores(texts)
        truncated = await hf.get_scores(texts, max_length=4)
    finally:
        await hf.close()
    assert not vllm_scorer.can_generate
    assert await vllm_scorer.get_scores(texts) == pytest.approx(expected, abs=1e-3)
    assert await vllm_scorer.get_scores(texts, max_length=4) == pytest.approx(truncated, abs=1e-3)
    with pytest.raises(InvalidRequest, match="use get_scores"):
        await vllm_scorer.chat([{"role": "user", "content": "hi"}])
