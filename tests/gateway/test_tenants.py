"""Tenants on one gateway: each sees, streams and cancels only its own jobs; an admin sees all; a tenant at
its quota is refused (429) and slows nobody else. Real gateway processes, real echo workers, the `openai`
package; the held jobs (`[hold]`) cannot end before the test cancels them."""

import asyncio
import json

import httpx
import openai
import pytest

from tests.gateway.conftest import cancel_response
from tests.waiting import until

TEAM_A, TEAM_B, TEAM_C, OPS = "key-team-a", "key-team-b", "key-team-c", "key-ops"
KEYS_TOML = f"""
[defaults]
top_priority = 2

[tenants.team-c]
keys = ["{TEAM_C}"]
top_priority = 7

[tenants.team-a]
keys = ["{TEAM_A}"]
max_jobs = 3

[tenants.team-b]
keys = ["{TEAM_B}"]

[tenants.ops]
keys = ["{OPS}"]
admin = true
"""
GHOST = "0" * 32  # a job id nobody ever had


@pytest.fixture(scope="module")
def shared(start_gateway, echo_worker, tmp_path_factory):
    """One gateway in front of three tenants, as a team would share it."""
    keys_file = tmp_path_factory.mktemp("tenants") / "keys.toml"
    keys_file.write_text(KEYS_TOML)
    return start_gateway(env={"INFERQ_GATEWAY_API_KEYS_FILE": str(keys_file)})


def as_tenant(gateway, key):
    return openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)


def ask(text):
    return [{"role": "user", "content": text}]


async def _not_found(call, *args, **kwargs):
    with pytest.raises(openai.NotFoundError) as caught:
        await call(*args, **kwargs)
    return caught.value.body


async def test_another_tenants_responses_are_404s_like_responses_that_never_were(shared):
    async with as_tenant(shared, TEAM_A) as a, as_tenant(shared, TEAM_B) as b:
        held = await a.responses.create(model="echo", input="mine [hold]", background=True)
        finished = await a.chat.completions.create(model="echo", messages=ask("the secret answer"))
        as_response = "resp_" + finished.id.removeprefix("chatcmpl-")  # any chat job is reachable as a response
        ghost_body = await _not_found(b.responses.retrieve, f"resp_{GHOST}")
        for response_id in (held.id, as_response):
            as_ghost = {**ghost_body, "message": ghost_body["message"].replace(f"resp_{GHOST}", response_id)}
            assert await _not_found(b.responses.retrieve, response_id) == as_ghost
            assert await _not_found(b.responses.cancel, response_id) == as_ghost
            assert await _not_found(b.responses.retrieve, response_id, stream=True) == as_ghost
        # B's attempts changed nothing: A's response still runs, and A can cancel it
        assert (await a.responses.retrieve(held.id)).status in ("queued", "in_progress")
        stream = await a.responses.retrieve(held.id, stream=True)
        async for event in stream:
            if event.type == "response.output_text.delta":
                break  # running, its first word out: the cancel keeps it
        await stream.close()
        cancelled = await cancel_response(a, held.id)
        assert (cancelled.status, cancelled.output_text) == ("cancelled", "mine")


async def test_a_job_record_is_its_tenants_and_only_admins_see_where_it_ran(shared):
    async with as_tenant(shared, TEAM_A) as a:
        finished = await a.chat.completions.create(model="echo", messages=ask("hello there"))
    job_id = finished.id.removeprefix("chatcmpl-")
    async with httpx.AsyncClient(base_url=shared.url, timeout=120) as http:

        async def record(key, job):
            return await http.get(f"/inferq/jobs/{job}", headers={"Authorization": f"Bearer {key}"})

        own, other, ghost, admin = await asyncio.gather(
            record(TEAM_A, job_id), record(TEAM_B, job_id), record(TEAM_B, GHOST), record(OPS, job_id)
        )
    assert own.status_code == 200 and own.json()["responses"][0]["response_text"] == "hello there"
    assert "worker" not in own.json() and "host" not in own.json()  # which machines run the fleet: admins only
    assert (other.status_code, ghost.status_code) == (404, 404)
    assert other.json()["error"]["message"].replace(job_id, GHOST) == ghost.json()["error"]["message"]
    assert admin.status_code == 200 and admin.json()["worker"] and admin.json()["host"]


async def test_a_tenant_asks_for_no_more_urgency_than_its_key_allows(shared):
    # Unchecked, any key could put its jobs at priority 0 and crowd every other tenant's out of the engines.
    async def answer(key, **priority):
        async with as_tenant(shared, key) as tenant:
            reply = await tenant.chat.completions.create(
                model="echo", messages=ask("at [priority]"), extra_body=priority
            )
        return reply.choices[0].message.content

    async with as_tenant(shared, TEAM_C) as c:
        with pytest.raises(openai.BadRequestError) as caught:
            await c.chat.completions.create(model="echo", messages=ask("now"), extra_body={"priority": 6})
    assert caught.value.body["param"] == "priority" and "7 to 9" in caught.value.body["message"]
    # asking for none runs at the default (5), or at the tenant's top where that is less urgent
    assert [await answer(TEAM_C), await answer(TEAM_C, priority=8), await answer(TEAM_A)] == [
        "at priority=7",
        "at priority=8",
        "at priority=5",
    ]
    assert [await answer(TEAM_A, priority=2), await answer(OPS, priority=0)] == ["at priority=2", "at priority=0"]


async def test_a_failed_jobs_record_shows_its_tenant_the_job_id_not_the_engines_exception(shared):
    async with as_tenant(shared, TEAM_A) as a:
        created = await a.responses.create(model="echo", input="fine until [fail]", background=True)
        job_id = created.id.removeprefix("resp_")

        async def failed() -> bool:
            return (await a.responses.retrieve(created.id)).status == "failed"

        await until(failed, "the [fail] job never failed")
    async with httpx.AsyncClient(base_url=shared.url, timeout=120) as http:  # a bound for failure only
        own, admin = [
            (await http.get(f"/inferq/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"})).json()["error"]
            for key in (TEAM_A, OPS)
        ]
    # the engine's exception may quote another tenant's data or the worker's paths: its operator reads it
    assert job_id in own["message"] and "[fail]" not in own["message"] and own["type"] == admin["type"]
    assert "[fail]" in admin["message"]


async def test_a_tenant_at_its_quota_is_refused_and_slows_nobody_else(shared, start_worker):
    # Four slots; team-a may hold three of them at most, so team-b always finds one free.
    worker = start_worker("echo", "quota-echo", engine="echo", concurrency=4)
    async with as_tenant(shared, TEAM_A) as a, as_tenant(shared, TEAM_B) as b:

        async def served() -> bool:  # the gateway scans the registry once a second: wait for it to see the worker
            return "quota-echo" in {model.id async for model in a.models.list()}

        await until(served, "the gateway never saw the quota-echo worker")
        held = [
            await a.responses.create(model="quota-echo", input=f"held {i} [hold]", background=True) for i in range(3)
        ]
        with pytest.raises(openai.RateLimitError) as caught:
            await a.responses.create(model="quota-echo", input="one too many", background=True)
        assert caught.value.code == "quota_exceeded" and caught.value.response.headers["retry-after"] == "2"
        with pytest.raises(openai.RateLimitError):
            await a.chat.completions.create(model="quota-echo", messages=ask("nor this"))
        reply = await b.chat.completions.create(model="quota-echo", messages=ask("not slowed"))
        assert reply.choices[0].message.content == "not slowed"
        for response in held:
            await a.responses.cancel(response.id)

        async def all_cancelled() -> bool:
            return {(await a.responses.retrieve(r.id)).status for r in held} == {"cancelled"}

        await until(all_cancelled, "team-a's held responses were never cancelled")
        again = await a.chat.completions.create(model="quota-echo", messages=ask("room again"))
        assert again.choices[0].message.content == "room again"
    worker.stop()


async def test_an_open_gateway_serves_everyone_as_one_admin(start_gateway, echo_worker):
    open_gateway = start_gateway()  # no keys: open, and its log says so
    assert "the gateway is open" in open_gateway.log_path.read_text()
    async with as_tenant(open_gateway, "anything") as anyone:
        finished = await anyone.chat.completions.create(model="echo", messages=ask("open door"))
    async with httpx.AsyncClient(base_url=open_gateway.url, timeout=120) as http:
        record = (await http.get(f"/inferq/jobs/{finished.id.removeprefix('chatcmpl-')}")).json()
    assert record["responses"][0]["response_text"] == "open door" and record["worker"]


async def test_batch_progress_is_in_the_metrics_for_admins_only(shared):
    texts = ["metric 0", "metric 1 [hold]", "metric 2 [hold]"]  # one answered, two held until the cancel
    lines = [{"custom_id": f"m{i}", "url": "/v1/chat/completions", "body": {"model": "echo", "messages": ask(text)}}
             for i, text in enumerate(texts)]  # fmt: skip
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    async with as_tenant(shared, TEAM_B) as b:
        uploaded = await b.files.create(file=("m.jsonl", data), purpose="batch")
        batch = await b.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                       completion_window="24h")  # fmt: skip
        async with httpx.AsyncClient(base_url=shared.url, timeout=120) as http:

            def line(state: str, count: int) -> str:
                return f'inferq_batch_lines{{batch="{batch.id}",owner="team-b",state="{state}"}} {count}.0'

            async def scraped() -> bool:  # one scrape with both: 2 in flight is also where the batch begins
                text = (await http.get("/metrics", headers={"Authorization": f"Bearer {OPS}"})).text
                return line("in_flight", 2) in text and line("completed", 1) in text and line("total", 3) in text

            await until(scraped, "the batch's progress (1 answered, 2 held) never showed in the metrics")
            refused = await http.get("/metrics", headers={"Authorization": f"Bearer {TEAM_B}"})
            assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_only"
        cancelled = await b.batches.cancel(batch.id)
        assert cancelled.status in ("cancelling", "cancelled")


@pytest.mark.parametrize("setting", ["file of comments", "blank keys"])
def test_a_keys_setting_that_holds_no_key_is_refused_not_an_open_gateway(tmp_path, setting):
    """An empty keys file (a secret mounted empty) would otherwise open the gateway to everyone, as an admin."""
    from gateway.settings import GatewaySettings

    if setting == "file of comments":
        keys_file = tmp_path / "keys.txt"
        keys_file.write_text("# keys go here\n\n")
        settings, named = GatewaySettings(api_keys_file=keys_file), "INFERQ_GATEWAY_API_KEYS_FILE"
    else:
        settings, named = GatewaySettings(api_keys=" , "), "INFERQ_GATEWAY_API_KEYS"
    with pytest.raises(ValueError, match=f"{named}.* holds no key"):
        settings.key_table()
    assert GatewaySettings().key_table().is_open  # neither setting: open, as the embedded default runs
