"""The KTransformers engine: its options and start-up checks, and a start on the sglang-kt stand-in.
KTransformers needs CUDA and its own environment; it was not run here."""

import shutil
import sys
from pathlib import Path

import pytest

from engines import load_engine
from engines.errors import EngineUnavailable, InvalidRequest
from engines.schemas import parse_engine_args
from engines.sglang.kt import KtEngineArgs, kt_server_args

TESTS = Path(__file__).resolve().parent.parent
CONFIG = type("Config", (), {"architectures": ["Qwen3MoeForCausalLM"]})()
KT_OPTIONS = {"kt_weight_path": "/weights/Qwen3-30B-A3B-INT8", "kt_num_gpu_experts": 32, "kt_method": "AMXINT8"}


def test_kt_options_join_sglangs_and_are_all_passed_explicitly():
    args = KtEngineArgs(**KT_OPTIONS, kt_cpuinfer=64, kt_max_deferred_experts_per_token=2, mem_fraction_static=0.8)
    kwargs = kt_server_args("/models/Qwen3-30B-A3B", args, CONFIG, num_gpus=1)
    assert kwargs["model_path"] == "/models/Qwen3-30B-A3B" and kwargs["mem_fraction_static"] == 0.8
    assert kwargs["kt_weight_path"] == "/weights/Qwen3-30B-A3B-INT8" and kwargs["kt_method"] == "AMXINT8"
    # the fork's dataclass defaults are None, not its CLI's: these must be sent
    assert (kwargs["kt_cpuinfer"], kwargs["kt_threadpool_count"], kwargs["kt_num_gpu_experts"]) == (64, 2, 32)
    assert "kt_gpu_experts_ratio" not in kwargs


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"kt_num_gpu_experts": 8}, "engine_args.kt_weight_path"),
        ({"kt_weight_path": "/w"}, "engine_args"),  # KTransformers would silently switch itself off
        ({**KT_OPTIONS, "kt_numa_nodes": [0, 1, 2]}, "engine_args"),
        ({**KT_OPTIONS, "kt_gpu_experts_ratio": 1.5}, "engine_args.kt_gpu_experts_ratio"),
    ],
)
def test_kt_options_are_checked_with_the_field_named(options, field):
    with pytest.raises(InvalidRequest) as caught:
        parse_engine_args(KtEngineArgs, options)
    assert caught.value.field == field


@pytest.fixture
def stand_in_paths(monkeypatch):
    def use(*paths):
        for path in paths:
            monkeypatch.syspath_prepend(str(path))

    yield use
    for name in [n for n in sys.modules if n in ("sglang", "kt_kernel") or n.startswith(("sglang.", "kt_kernel."))]:
        del sys.modules[name]


def test_upstream_sglang_is_refused_with_the_install_that_fixes_it(stand_in_paths, tiny_llama_dir, tmp_path):
    shutil.copytree(TESTS / "stand_ins_kt" / "kt_kernel", tmp_path / "kt_kernel")  # kt_kernel, but no fork
    stand_in_paths(TESTS / "stand_ins", tmp_path)
    with pytest.raises(EngineUnavailable, match="sglang-kt fork") as caught:
        load_engine("ktransformers", tiny_llama_dir, **KT_OPTIONS)
    assert "pip install 'inferq[ktransformers]'" in caught.value.message


def test_a_missing_kt_kernel_is_refused(stand_in_paths, tiny_llama_dir):
    stand_in_paths(TESTS / "stand_ins")
    with pytest.raises(EngineUnavailable, match="kt_kernel"):
        load_engine("ktransformers", tiny_llama_dir, **KT_OPTIONS)


async def test_the_engine_starts_on_the_fork_with_its_kt_options(monkeypatch, stand_in_paths, tiny_llama_dir):
    monkeypatch.setenv("STAND_IN_SGLANG_FLAVOR", "kt")
    stand_in_paths(TESTS / "stand_ins", TESTS / "stand_ins_kt")
    engine = load_engine("ktransformers", tiny_llama_dir, **KT_OPTIONS)
    try:
        assert engine.name == "ktransformers"
        launched = engine._engine.server_args
        assert (launched.kt_weight_path, launched.kt_method, launched.kt_num_gpu_experts) == (
            "/weights/Qwen3-30B-A3B-INT8", "AMXINT8", 32,
        )  # fmt: skip
        pieces = [piece async for piece in engine.stream_chat([{"role": "user", "content": "hi"}], max_new_tokens=6)]
        assert len(pieces) > 1
    finally:
        await engine.close()
    with pytest.raises(InvalidRequest) as caught:  # the fork's ServerArgs is a dataclass: its fields still check
        load_engine("ktransformers", tiny_llama_dir, **KT_OPTIONS, sglang_config={"kt_mehtod": "BF16"})
    assert caught.value.field == "engine_args.sglang_config.kt_mehtod"
