import subprocess
import sys

import pytest

from engines import ENGINES, load_engine
from engines.errors import EngineUnavailable, InvalidRequest
from engines.registry import engine_class


def test_llamafactorys_four_backends_and_echo_are_registered():
    assert set(ENGINES) == {"huggingface", "vllm", "sglang", "ktransformers", "echo"}


def test_unknown_backend_names_itself_and_the_choices():
    with pytest.raises(EngineUnavailable) as caught:
        load_engine("tensorrt", "model")
    assert "tensorrt" in str(caught.value) and "huggingface" in str(caught.value)
    assert caught.value.field == "engine"


def test_missing_backend_names_the_pip_install():
    pytest.importorskip("torch")
    if _importable("sglang"):
        pytest.fail("sglang is installed here; this test needs an environment without it")
    with pytest.raises(EngineUnavailable, match=r"pip install 'inferq\[sglang\]'"):
        engine_class("sglang")


def test_producer_side_imports_no_torch():
    code = "import sys, engines, tasks, api_client; assert 'torch' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_engine_args_are_refused_by_name(tiny_llama_dir):
    with pytest.raises(InvalidRequest) as caught:
        load_engine("huggingface", tiny_llama_dir, max_batch_szie=4)
    assert caught.value.field == "engine_args.max_batch_szie"


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
