"""`Idempotency-Key` on the gateway's POSTs: a retry is the same job, per tenant, and a client that leaves a
keyed request does not cancel its job (the key says it will come back). A real gateway process, a real echo
worker, the `openai` package; the held job (`[wait:PATH]`) cannot end before the test lets it go."""

import asyncio
import uuid

import httpx
import openai
import pytest
import redis.asyncio

from api_client.jobs import idempotent_job_id
from gateway.chat import COMPLETION_PREFIX
from gateway.tenants import bare_key_tenant
from tasks import names
from tests.gateway.conftest import API_KEY
from tests.waiting import until


def ask(text):
    return [{"role": "user", "content": text}]


async def test_a_retry_with_the_same_key_is_answered_by_the_same_job(oai, gateway):
    headers = {"Idempotency-Key": f"charge-{uuid.uuid4().hex}"}
    first = await oai.chat.completions.create(model="echo", messages=ask("charge card 42"), extra_headers=headers)
    again = await oai.chat.completions.create(model="echo", messages=ask("charge card 42"), extra_headers=headers)
    assert again.id == first.id and again.choices[0].message.content == "charge card 42"
    async with openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="some-other-key", max_retries=0) as other:
        theirs = await other.chat.completions.create(
            model="echo", messages=ask("charge card 42"), extra_headers=headers
        )
    assert theirs.id != first.id  # keys are per tenant: another tenant's same key is its own job
    with pytest.raises(openai.BadRequestError) as refused:
        await oai.chat.completions.create(model="echo", messages=ask("charge card 43"), extra_headers=headers)
    assert refused.value.body["param"] == "idempotency_key"


async def test_a_keyed_request_whose_client_leaves_keeps_its_job_for_the_retry(gateway, inferq, release):
    wait, let_go = release()
    key = f"report-{uuid.uuid4().hex}"
    job_id = idempotent_job_id(bare_key_tenant(API_KEY), key)
    body = {"model": "echo", "messages": ask(f"kept {wait} whole")}
    headers = {"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": key}
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=None) as http:
        waiting = asyncio.create_task(http.post("/v1/chat/completions", json=body))
        await until(lambda: inferq.store.is_running(job_id), "the job never started")
        waiting.cancel()  # the client goes away (a timeout, a deploy): its connection closes
        with pytest.raises(asyncio.CancelledError):
            await waiting
        let_go()
        retry = await http.post("/v1/chat/completions", json=body)
    assert retry.status_code == 200, retry.text
    assert retry.json()["id"] == f"chatcmpl-{job_id}"
    assert retry.json()["choices"][0]["message"]["content"] == f"kept {wait} whole"
    assert (await inferq.store.record(job_id)).attempt == 1


async def test_a_streamed_retry_after_the_token_log_expired_streams_the_answer_from_the_record(oai, redis_url):
    headers = {"Idempotency-Key": f"late-{uuid.uuid4().hex}"}

    async def streamed():
        stream = await oai.chat.completions.create(
            model="echo", messages=ask("kept for a day"), stream=True, extra_headers=headers
        )
        return [chunk async for chunk in stream]

    first = await streamed()
    job_id = first[0].id.removeprefix(COMPLETION_PREFIX)
    async with redis.asyncio.Redis.from_url(redis_url) as r:
        assert await r.delete(names.events_key(job_id)) == 1  # as `stream_ttl_s` would, an hour later
    again = await streamed()
    assert again[0].id == first[0].id and "".join(c.choices[0].delta.content or "" for c in again) == "kept for a day"
    assert again[-1].choices[0].finish_reason == "stop"
