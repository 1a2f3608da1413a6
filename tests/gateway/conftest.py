"""A real `inferq gateway` process on loopback, in front of real echo workers, for the official `openai` client."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest
import redis

from gateway.tenants import bare_key_tenant
from harness.gateway_process import GatewayProcess
from tasks import names
from tests.waiting import until

API_KEY = "gateway-test-key"


@pytest.fixture(scope="session")
def start_gateway(redis_url, tmp_path_factory):
    """`start_gateway(**options)` starts a gateway process; all are stopped at the end of the session. They keep
    their Batch API files in the session's one folder, unless `env` says otherwise."""
    logs = tmp_path_factory.mktemp("gateway-logs")
    files = tmp_path_factory.mktemp("gateway-files")
    started: list[GatewayProcess] = []

    def start(**options) -> GatewayProcess:
        # The session's tests share one tenant and leave some batches unfinished; the cap is tested on its own.
        # A gateway SIGKILLed between saving a batch line's job and sending it leaves the next driver waiting
        # `send_grace_s` before it sends the line itself: 5 s here, not the 30 s a production fleet keeps.
        defaults = {"INFERQ_GATEWAY_FILES_URL": str(files), "INFERQ_GATEWAY_TENANT_MAX_BATCHES": "1000",
                    "INFERQ_SEND_GRACE_S": "5"}  # fmt: skip
        options["env"] = {**defaults, **options.get("env", {})}
        gateway = GatewayProcess(redis_url, logs / f"gateway-{len(started)}.log", **options)
        started.append(gateway)
        return gateway.start()

    yield start
    for gateway in started:
        gateway.stop()


@pytest.fixture(scope="session")
def gateway(start_gateway, echo_worker, echo_scorer_worker):
    """The session's gateway: it wants an API key."""
    return start_gateway(api_keys=f"some-other-key,{API_KEY}")


@pytest.fixture
async def oai(gateway):
    async with openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=API_KEY, max_retries=0) as client:
        yield client


@pytest.fixture
async def inferq(client_settings):
    """An inferq client beside the gateway, to look at the jobs it made."""
    from api_client import AsyncInferQClient

    async with AsyncInferQClient(settings=client_settings) as client:
        yield client


async def leave_while_waiting(gateway, inferq, redis_url, path, body_for, tmp_path, *, job_streams: bool):
    """Sends `body_for(text)` (a job that holds), waits until its job has answered its first words, then drops
    the connection: the job must end cancelled in its engine, with the text it had. The tenant's quota set
    says which job it is."""
    owned = redis.Redis.from_url(redis_url, decode_responses=True)
    quota_set = names.owner_jobs_key(bare_key_tenant(API_KEY))
    known = set(owned.zrange(quota_set, 0, -1))
    headers = {"Authorization": f"Bearer {API_KEY}"}
    # An unstreamed job shows nothing before its record: the engine says when its first words were taken.
    kept = "kept" if job_streams else f"kept [touch:{tmp_path / 'answered'}]"
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=None) as http:
        waiting = asyncio.create_task(http.post(path, json=body_for(f"{kept} [hold] never")))
        await until(lambda: set(owned.zrange(quota_set, 0, -1)) - known, "the request never made a job")
        [job_id] = set(owned.zrange(quota_set, 0, -1)) - known
        if job_streams:
            await until(lambda: inferq.store.events_after(job_id, 0), "the job never streamed")
        else:
            await until(lambda: (tmp_path / "answered").exists(), "the job never answered")
        waiting.cancel()  # the client goes away: its connection closes
        with pytest.raises(asyncio.CancelledError):
            await waiting
    handle = await inferq.find_job(job_id)
    async for _ in handle.events(timeout=60):
        pass
    record = await handle.record()
    assert record.status == "cancelled"
    assert (record.responses[0].response_text, record.responses[0].finish_reason) == (kept, "abort")


async def cancel_response(client, response_id):
    """`responses.cancel`, then, where the gateway's wait for the worker's record ran out first (it answers the
    response still `in_progress` after 10 s: a loaded machine), the response as it ends."""
    response = await client.responses.cancel(response_id)
    give_up_at = time.monotonic() + 300  # a bound for failure only
    while response.status in ("queued", "in_progress"):
        assert time.monotonic() < give_up_at, f"{response_id} still {response.status} after its cancel"
        await asyncio.sleep(0.1)
        response = await client.responses.retrieve(response_id)
    return response
