"""The async client (and the sync client's async methods) against real workers on a real Redis."""

import asyncio

import pytest

from api_client import AsyncInferQClient, InferQClient, JobCancelled, JobTimeout, NoSuchModel

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = {"temperature": 0}


@pytest.fixture(scope="module")
async def aclient(redis_url):
    async with AsyncInferQClient(redis_url, model="tiny") as client:
        yield client


async def test_achat_and_joined_astream_agree(aclient, tiny_worker):
    [response] = await aclient.achat(QUESTION, max_new_tokens=16, **GREEDY)
    pieces = [piece async for piece in aclient.astream_chat(QUESTION, max_new_tokens=16, **GREEDY)]
    assert len(pieces) > 1 and "".join(pieces) == response.response_text
    assert response.response_length == 16


async def test_many_concurrent_jobs_share_the_worker(aclient, tiny_worker):
    prompts = [[{"role": "user", "content": f"count to {i}"}] for i in range(8)]
    results = await asyncio.gather(*[aclient.achat(p, max_new_tokens=10, **GREEDY) for p in prompts])
    assert [r[0].response_length for r in results] == [10] * 8


async def test_aget_scores(aclient, tiny_scorer_worker):
    scores = await aclient.aget_scores(["a good answer", "a bad answer"], "tiny-rm")
    assert len(scores) == 2


async def test_closing_a_stream_early_cancels_its_job(aclient, tiny_worker):
    stream = aclient.astream_chat(QUESTION, max_new_tokens=2000, **GREEDY)
    async for _ in stream:
        break
    await stream.aclose()
    # the job is gone from the worker: its record says cancelled, long before 2000 tokens
    handle = await _latest_job(aclient)
    with pytest.raises(JobCancelled) as caught:
        await handle.result(timeout=30)
    assert caught.value.record.responses[0].finish_reason == "abort"


async def test_a_timeout_stops_the_wait_and_the_job(aclient, tiny_worker):
    with pytest.raises(JobTimeout):
        await aclient.achat(QUESTION, max_new_tokens=2000, timeout=1.0, **GREEDY)
    handle = await _latest_job(aclient)
    with pytest.raises(JobCancelled):
        await handle.result(timeout=30)


async def test_handle_timeout_leaves_the_job_running(aclient, tiny_worker):
    handle = await aclient.submit_chat(QUESTION, max_new_tokens=60, **GREEDY)
    with pytest.raises(JobTimeout):
        await handle.result(timeout=0.2)
    record = await handle.result(timeout=60)
    assert record.responses[0].response_length == 60


async def test_async_unserved_model_expires(aclient):
    with pytest.raises(NoSuchModel):
        await aclient.achat(QUESTION, "ghost-model", deadline_s=1)


async def test_sync_clients_async_methods_bridge_to_its_loop(redis_url, tiny_worker, tiny_scorer_worker):
    with InferQClient(redis_url, model="tiny") as client:
        [response] = await client.achat(QUESTION, max_new_tokens=6, **GREEDY)
        pieces = [piece async for piece in client.astream_chat(QUESTION, max_new_tokens=6, **GREEDY)]
        scores = await client.aget_scores(["x"], "tiny-rm")
    assert "".join(pieces) == response.response_text and len(scores) == 1


async def _latest_job(client: AsyncInferQClient):
    """The handle of the most recently submitted job (the convenience methods do not return theirs)."""
    metas = []
    async for key in client.store.redis.scan_iter(match="inferq:job:*"):
        metas.append(await client.store.meta(key.split(":")[-1]))
    newest = max(metas, key=lambda meta: meta.queued_at)
    return await client.find_job(newest.job_id)
