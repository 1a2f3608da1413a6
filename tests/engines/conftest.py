"""Engines shared by the engine tests; each loads once per session on the session's event loop.

The contract suite (test_contract.py) and each backend's own tests use the same instances, so a slow
engine (vLLM starts in about 40 s) starts once, and stops when the engine tests are done.
"""

import os
import sys
import time
from pathlib import Path

import psutil
import pytest

from engines import load_engine

STAND_INS = Path(__file__).resolve().parent.parent / "stand_ins"


def forget_sglang() -> None:
    """Drops the stand-in's modules, so the next `import sglang` reads whichever stand-in is on the path."""
    for name in [name for name in sys.modules if name == "sglang" or name.startswith("sglang.")]:
        del sys.modules[name]


@pytest.fixture(scope="session")
async def tiny_engine(tiny_llama_dir):
    engine = load_engine("huggingface", tiny_llama_dir)
    yield engine
    await engine.close()


@pytest.fixture(scope="session")
async def smollm2_engine(smollm2_dir):
    engine = load_engine("huggingface", smollm2_dir)
    yield engine
    await engine.close()


@pytest.fixture(scope="session")
async def tiny_scoring_engine(tiny_classifier_dir):
    engine = load_engine("huggingface", tiny_classifier_dir, score_batch_size=4)
    yield engine
    await engine.close()


def _vllm_processes() -> set[int]:
    """This process's descendants but multiprocessing's resource tracker, which lives as long as this does."""
    found = set()
    for child in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if "resource_tracker" not in " ".join(child.cmdline()):
                found.add(child.pid)
        except psutil.NoSuchProcess:
            continue
    return found


def _alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE}


# Package scope: vLLM's idle EngineCore still takes a fifth of a core, which the rest of the session needs.
@pytest.fixture(scope="package")
async def vllm_engine(smollm2_dir, sea_adapter_dir):
    before = _vllm_processes()
    engine = load_engine("vllm", smollm2_dir, enforce_eager=True, adapters={"sea": sea_adapter_dir})
    spawned = _vllm_processes() - before
    assert spawned  # vLLM's EngineCore runs in a process of its own
    yield engine
    await engine.close()
    # Closed, the engine leaves no process behind anywhere (a worker's SIGTERM path closes it the same way).
    give_up_at = time.monotonic() + 120  # a bound for failure only
    while _alive(spawned) and time.monotonic() < give_up_at:
        time.sleep(0.2)
    assert not _alive(spawned), "vLLM's processes outlived engine.close()"


@pytest.fixture
def stand_in(monkeypatch):
    """SGLang's stand-in (tests/stand_ins/sglang) importable as `sglang` for one test."""
    monkeypatch.syspath_prepend(str(STAND_INS))
    yield
    forget_sglang()


@pytest.fixture(scope="session")
async def sglang_engine(tiny_llama_dir):
    # The stand-in is importable only while the engine loads: the engine keeps the modules it
    # imported, and the tests that load their own stand-in (the sglang-kt fork's too) import afresh.
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(STAND_INS))
        try:
            engine = load_engine("sglang", tiny_llama_dir, adapters={"sea": "/adapters/sea"})
        finally:
            forget_sglang()
    yield engine
    await engine.close()


@pytest.fixture(scope="session")
async def echo_engine():
    engine = load_engine("echo", "echo")
    yield engine
    await engine.close()
