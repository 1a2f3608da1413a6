"""Session-wide models and engines. Slow things (model conversion, engine start) happen once."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

from engines.default_model import ensure_smollm2


@pytest.fixture(scope="session")
def smollm2_dir() -> str:
    return ensure_smollm2()


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, smollm2_dir) -> str:
    from tests.builders import build_tiny_llama

    return str(build_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llama", smollm2_dir))


@pytest.fixture(scope="session")
def tiny_classifier_dir(tmp_path_factory, tiny_llama_dir) -> str:
    from tests.builders import build_classifier

    return str(build_classifier(tmp_path_factory.mktemp("models") / "tiny-classifier", tiny_llama_dir))


@pytest.fixture(scope="session")
def tiny_value_head_dir(tmp_path_factory, tiny_llama_dir) -> str:
    from tests.builders import build_value_head_model

    return str(build_value_head_model(tmp_path_factory.mktemp("models") / "tiny-value-head", tiny_llama_dir))


@pytest.fixture(scope="session")
def smollm2_classifier_dir(tmp_path_factory, smollm2_dir) -> str:
    from tests.builders import build_classifier

    return str(build_classifier(tmp_path_factory.mktemp("models") / "smollm2-classifier", smollm2_dir))
