"""The SGLang engine: its translation logic, and the engine itself on a stand-in that follows SGLang
0.5.23's real signatures (tests/stand_ins/sglang). SGLang itself needs CUDA and was not run here."""

import asyncio
import dataclasses
import json
import logging
import multiprocessing
import os
import shutil
import subprocess
import sys

import pytest

from engines import load_engine
from engines.errors import EngineError, InvalidRequest
from engines.params import ResolvedParams
from engines.sglang.engine import SGLangEngineArgs, server_args
from engines.sglang.translate import SequenceStream, StreamMode, check_overrides, finish_reason, sampling_params
from tests.images import DATA_URL

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
# the shape of a vision-language model's template: one placeholder per image part
VLM_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{% if m.content is string %}{{ m.content }}{% else %}"
    "{% for p in m.content %}{% if p.type == 'image' %}<image>{% else %}{{ p.text }}{% endif %}{% endfor %}"
    "{% endif %}<|im_end|>\n{% endfor %}<|im_start|>assistant"
)
CANNED = "The capital of France is Paris. It is a lovely city with many museums, parks and cafes."

PARAMS = ResolvedParams(
    do_sample=False, temperature=0.0, top_p=1.0, top_k=0, max_new_tokens=64, repetition_penalty=1.0,
    n=1, seed=None, stop=(), stop_token_ids=(2,), skip_special_tokens=True,
)  # fmt: skip


# -- translation ----------------------------------------------------------------------------------


def test_sampling_params_use_sglangs_names():
    mapped = sampling_params(dataclasses.replace(PARAMS, seed=7, stop=("END",)), seeds_honoured=True)
    assert mapped["sampling_seed"] == 7 and "seed" not in mapped
    assert (mapped["top_k"], mapped["stop"], mapped["stop_token_ids"]) == (-1, ["END"], [2])
    assert sampling_params(PARAMS, seeds_honoured=False)["stop"] is None


def test_min_tokens_beside_stop_strings_is_refused_since_sglang_would_stop_at_once():
    with pytest.raises(InvalidRequest) as caught:
        sampling_params(dataclasses.replace(PARAMS, min_tokens=5, stop=("END",)), seeds_honoured=False)
    assert caught.value.field == "min_tokens"
    assert sampling_params(dataclasses.replace(PARAMS, min_tokens=5), seeds_honoured=False)["min_new_tokens"] == 5


def test_a_seed_sglang_would_ignore_is_refused():
    with pytest.raises(InvalidRequest) as caught:
        sampling_params(dataclasses.replace(PARAMS, seed=7), seeds_honoured=False)
    assert caught.value.field == "seed" and "enable_deterministic_inference" in caught.value.message


@pytest.mark.parametrize(
    ("raw", "mapped"),
    [
        (None, None),
        ({"type": "stop", "matched": 2}, "stop"),  # LLaMA-Factory reports "length" here
        ({"type": "stop", "matched": "END"}, "stop"),
        ({"type": "length", "length": 64}, "length"),
        ({"type": "abort", "message": "Abort in waiting queue"}, "abort"),
    ],
)
def test_finish_reasons_map_from_sglangs_dicts(raw, mapped):
    assert finish_reason(raw) == mapped


def test_an_unknown_finish_reason_is_an_engine_error():
    with pytest.raises(EngineError):
        finish_reason({"type": "melted"})


def _meta(reason=None):
    return {"meta_info": {"id": "r", "finish_reason": reason}}


def test_cumulative_chunks_become_deltas_and_live_id_lists_are_copied():
    stream = SequenceStream(StreamMode(text_is_delta=False, ids_are_delta=False), stop=())
    live = [5]
    assert stream.feed({"text": "Hel", "output_ids": live, **_meta()}) == ("Hel", (5,), None)
    live.append(6)  # SGLang keeps appending to the list it streamed
    assert stream.feed({"text": "Hello", "output_ids": live, **_meta()}) == ("lo", (6,), None)
    assert stream.feed({"text": "Hello!", "output_ids": [5, 6, 7], **_meta({"type": "length"})}) == (
        "!",
        (7,),
        "length",
    )


def test_incremental_chunks_pass_through_and_the_forks_mixed_mode_works():
    incremental = SequenceStream(StreamMode(text_is_delta=True, ids_are_delta=True), stop=())
    assert incremental.feed({"text": "Hel", "output_ids": [5], **_meta()}) == ("Hel", (5,), None)
    assert incremental.feed({"text": "lo", "output_ids": [6], **_meta()}) == ("lo", (6,), None)
    fork = SequenceStream(StreamMode.of(type("Args", (), {"stream_output": True})()), stop=())
    assert fork.feed({"text": "Hel", "output_ids": [5], **_meta()}) == ("Hel", (5,), None)
    assert fork.feed({"text": "Hello", "output_ids": [6], **_meta()}) == ("lo", (6,), None)


def test_a_stop_string_sglang_streams_before_trimming_never_leaks():
    stream = SequenceStream(StreamMode(False, False), stop=("Paris",))
    pieces = [stream.feed({"text": text, "output_ids": [], **_meta()})[0] for text in ("It is ", "It is Pa")]
    final = stream.feed({"text": "It is ", "output_ids": [], **_meta({"type": "stop", "matched": "Paris"})})
    assert "".join(pieces) + final[0] == "It is " and final[2] == "stop"


@pytest.mark.parametrize("incremental", [False, True])
def test_text_held_for_another_stop_string_is_the_answers_when_sglang_stops_at_its_own(incremental):
    stream = SequenceStream(StreamMode(incremental, incremental), stop=("Paris", "is Q"))
    # SGLang's chunks: deltas, or the text so far (its last one trimmed of the stop string it matched)
    texts = (
        ["The capital of France", " is", " "]
        if incremental
        else ["The capital of France", "The capital of France is", "The capital of France is "]
    )
    pieces = [stream.feed({"text": text, "output_ids": [], **_meta()})[0] for text in texts[:2]]
    final = stream.feed({"text": texts[2], "output_ids": [], **_meta({"type": "stop", "matched": "Paris"})})
    assert "".join(pieces) + final[0] == "The capital of France is " and final[2] == "stop"


def test_held_text_is_released_when_an_end_of_turn_token_ends_the_answer():
    stream = SequenceStream(StreamMode(False, False), stop=("Paris",))
    assert stream.feed({"text": "It is Pa", "output_ids": [], **_meta()})[0] == "It is "
    assert stream.feed({"text": "It is Pa", "output_ids": [], **_meta({"type": "stop", "matched": 2})})[0] == "Pa"


def test_engine_arguments_for_sglang():
    config = type("Config", (), {"architectures": ["LlamaForCausalLM"]})()
    args = SGLangEngineArgs(adapters={"sea": "/a"}, max_model_len=4096, mem_fraction_static=0.8)
    kwargs = server_args("/m", args, config, num_gpus=2)
    assert (kwargs["model_path"], kwargs["tp_size"], kwargs["is_embedding"]) == ("/m", 2, False)
    assert (kwargs["lora_paths"], kwargs["enable_lora"], kwargs["context_length"]) == ({"sea": "/a"}, True, 4096)
    assert kwargs["max_running_requests"] == 256  # set, so that the worker knows what to admit
    classifier = type("Config", (), {"architectures": ["Qwen2ForSequenceClassification"]})()
    assert server_args("/m", SGLangEngineArgs(), classifier, num_gpus=0)["is_embedding"] is True
    with pytest.raises(InvalidRequest) as caught:
        check_overrides({"chunked_prefil_size": 1}, {"chunked_prefill_size"}, "sglang_config")
    assert caught.value.field == "engine_args.sglang_config.chunked_prefil_size"


# -- the engine on the stand-in ---------------------------------------------------------------------


async def test_chat_stream_and_n_through_the_engine(sglang_engine):
    assert os.environ["SGLANG_RETURN_ORIGINAL_LOGPROB"] == "1"  # logprobs before temperature, as the contract's
    [response] = await sglang_engine.chat(QUESTION, **{"temperature": 0})
    assert (response.response_text, response.finish_reason) == (CANNED, "stop")
    canned_ids = sglang_engine.tokenizer(CANNED, add_special_tokens=False)["input_ids"]
    assert response.response_length == len(canned_ids) + 1  # the end-of-turn token counts
    pieces = [piece async for piece in sglang_engine.stream_chat(QUESTION)]
    assert len(pieces) > 5 and "".join(pieces) == CANNED
    answers = await sglang_engine.chat(QUESTION, n=3)
    assert [a.response_text for a in answers] == [CANNED, f"Option 1: {CANNED}", f"Option 2: {CANNED}"]


async def test_requests_reach_sglang_as_token_ids_with_mapped_parameters(sglang_engine):
    request = sglang_engine.prepare_chat(QUESTION, temperature=0, stop=["museums"], adapter="sea")
    [response] = await sglang_engine.chat(QUESTION, temperature=0, stop=["museums"], adapter="sea", priority=3)
    sent = sglang_engine._engine.tokenizer_manager.requests[-1]
    assert sent.input_ids == request.prompt_ids and sent.text is None
    # the job's priority, lower first as inferq's: a chat is scheduled before a batch's rows
    server = sglang_engine._engine.server_args
    assert sent.priority == 3 and server.enable_priority_scheduling and server.schedule_low_priority_values_first
    assert sent.lora_path == "sea" and sent.sampling_params["stop"] == ["museums"]
    assert response.response_text == CANNED[: CANNED.index("museums")] and response.finish_reason == "stop"


async def test_abort_reaches_every_child_of_an_n_request(sglang_engine):
    manager = sglang_engine._engine.tokenizer_manager
    aborted_before = set(manager.aborted)  # the engine is the session's: earlier tests aborted requests too
    request = sglang_engine.prepare_chat(QUESTION, n=3, request_id="parent")
    deltas = []
    async for delta in sglang_engine.generate(request):
        deltas.append(delta)
        if len(deltas) == 6:  # every child has shown its id by now
            await sglang_engine.abort("parent")
    finished = {d.index: d.finish_reason for d in deltas if d.finish_reason}
    assert finished == {0: "abort", 1: "abort", 2: "abort"}
    aborted = manager.aborted - aborted_before
    assert len(aborted) == 3 and "parent" not in aborted  # SGLang renamed the children
    assert all(state.abort_requested for state in manager.rid_to_state.values())  # none left running


async def test_a_consumer_that_stops_reading_aborts_the_request_on_the_kt_fork(monkeypatch, stand_in, tiny_llama_dir):
    monkeypatch.setenv("STAND_IN_SGLANG_FLAVOR", "kt")  # the fork does not abort a closed stream itself
    engine = load_engine("sglang", tiny_llama_dir)
    try:
        stream = engine.stream_chat(QUESTION, request_id="early")
        async for _ in stream:
            break
        await stream.aclose()
        assert engine._engine.tokenizer_manager.aborted == {"early"}
    finally:
        await engine.close()


async def test_sglang_refusals_become_invalid_requests(sglang_engine):
    with pytest.raises(InvalidRequest, match="repetition_penalty"):
        await sglang_engine.chat(QUESTION, repetition_penalty=3.0)


async def test_images_reach_the_model(stand_in, tiny_llama_dir, tmp_path):
    vision = tmp_path / "tiny-vlm"
    shutil.copytree(tiny_llama_dir, vision)
    config = json.loads((vision / "config.json").read_text())
    (vision / "config.json").write_text(json.dumps({**config, "vision_config": {"hidden_size": 8}}))
    engine = load_engine("sglang", str(vision), chat_template=VLM_TEMPLATE)
    try:
        assert engine.media_kinds == {"image"}
        message = {
            "role": "user",
            "content": [{"type": "image", "image": DATA_URL}, {"type": "text", "text": "What is it?"}],
        }
        await engine.chat([message], max_new_tokens=3)
        sent = engine._engine.tokenizer_manager.requests[-1]
        [image] = sent.image_data  # loaded under the worker's media policy, handed over decoded
        assert image.size == (8, 8) and image.mode == "RGB"
        assert sent.text == "<|im_start|>user\n<image>What is it?<|im_end|>\n<|im_start|>assistant"
    finally:
        await engine.close()


async def test_scores_through_sglangs_embedding_path(stand_in, tiny_classifier_dir):
    engine = load_engine("sglang", tiny_classifier_dir)
    try:
        assert not engine.can_generate
        texts = ["Paris is the capital.", "ok"]
        scores = await engine.get_scores(texts, max_length=3)
        ids = [engine.tokenizer(t, add_special_tokens=False)["input_ids"][:3] for t in texts]
        assert scores == [sum(i) % 997 / 100.0 for i in ids]  # the stand-in's "head", on the truncated ids
    finally:
        await engine.close()


def test_unknown_sglang_config_is_refused_before_launch(stand_in, tiny_llama_dir):
    with pytest.raises(InvalidRequest) as caught:
        load_engine("sglang", tiny_llama_dir, sglang_config={"mem_fraction": 0.5})
    assert caught.value.field == "engine_args.sglang_config.mem_fraction"


async def test_the_host_process_keeps_its_policy_start_method_logging_and_other_children(stand_in, tiny_llama_dir):
    policy = asyncio.get_event_loop_policy()
    start_method = multiprocessing.get_start_method(allow_none=True)
    handlers = list(logging.getLogger().handlers)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])  # the orphan guard, say
    try:
        engine = load_engine("sglang", tiny_llama_dir)
        assert asyncio.get_event_loop_policy() is policy
        assert multiprocessing.get_start_method(allow_none=True) == start_method
        assert logging.getLogger().handlers == handlers
        scheduler = engine._engine._scheduler
        watchdog = engine._engine.tokenizer_manager._subprocess_watchdog
        await engine.close()
        assert scheduler.wait(timeout=30) is not None  # SGLang's own process is gone...
        assert bystander.poll() is None  # ...and the worker's other children are not
        assert watchdog.stopped
    finally:
        bystander.kill()
        bystander.wait()
