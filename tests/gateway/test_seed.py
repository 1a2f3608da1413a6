"""Seed reproducibility needs a model that samples: the tiny random-weight Llama behind a real HF worker."""

import pytest


@pytest.fixture(scope="module")
def tiny(tiny_worker):
    return tiny_worker.name


async def test_the_same_seed_samples_the_same_answer(oai, tiny):
    def ask(seed):
        return oai.chat.completions.create(
            model=tiny, messages=[{"role": "user", "content": "hi"}], temperature=1.0, max_tokens=12, seed=seed
        )

    first, again, other = [(await ask(seed)).choices[0].message.content for seed in (7, 7, 8)]
    assert first == again and first != other
