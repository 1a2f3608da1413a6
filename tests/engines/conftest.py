"""HF engines shared by the engine tests; each loads once per session on the session's event loop."""

import pytest

from engines import load_engine


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
