"""What a submit leaves behind when its message does not go out, or goes out while its caller is cancelled:
a job exists exactly when its message was sent, and an idempotent retry can always finish what a first
try left undone. A real echo worker and Redis; the send is made to fail, or held mid-way, in its thread."""

import asyncio
import threading
import time
import uuid

import pytest
import redis
from kombu.exceptions import OperationalError

from api_client import AsyncInferQClient
from api_client.jobs import chat_job, idempotent_job_id, meta_of, request_digest
from tasks import names
from tasks.errors import JobCancelled
from tasks.schemas import OwnerQuota
from tests.api_client.conftest import looks_at_first_try
from tests.waiting import until


def ask(text):
    return [{"role": "user", "content": text}]


@pytest.fixture
async def aclient(client_settings):
    async with AsyncInferQClient(model="echo", settings=client_settings) as client:
        yield client


def fail_first_send(monkeypatch, client):
    real, calls = client._celery.send_task, []

    def send_task(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise OperationalError("the broker went away (for the test)")
        return real(*args, **kwargs)

    monkeypatch.setattr(client._celery, "send_task", send_task)


async def test_a_retry_of_a_try_that_failed_to_send_is_not_its_own_rival_under_the_quota(
    aclient, echo_worker, monkeypatch
):
    quota, owner, key = OwnerQuota(max_jobs=1), f"quota-{uuid.uuid4().hex}", f"order-{uuid.uuid4().hex}"
    fail_first_send(monkeypatch, aclient)
    with pytest.raises(OperationalError):
        await aclient.submit_chat(ask("once"), owner=owner, quota=quota, idempotency_key=key)
    retry = await aclient.submit_chat(ask("once"), owner=owner, quota=quota, idempotency_key=key)
    assert (await retry.result(timeout=120)).responses[0].response_text == "once"


async def test_a_resend_that_failed_gives_its_claim_to_the_next_retry(aclient, echo_worker, redis_url, monkeypatch):
    key = f"order-{uuid.uuid4().hex}"
    job = chat_job(ask("sent at last"), "echo")
    meta = meta_of(idempotent_job_id(None, key), job, digest=request_digest(job))
    meta = meta.model_copy(update={"queued_at": time.time() - 60})  # a first try that died before sending
    redis.Redis.from_url(redis_url).set(names.job_key(meta.job_id), meta.model_dump_json(), ex=3600)
    fail_first_send(monkeypatch, aclient)
    with pytest.raises(OperationalError):
        await aclient.submit_chat(ask("sent at last"), idempotency_key=key)  # claims the resend, fails it
    handle = await aclient.submit_chat(ask("sent at last"), idempotency_key=key)
    assert (await handle.result(timeout=120)).responses[0].response_text == "sent at last"


async def test_a_first_try_that_sent_nothing_is_sent_by_a_retry_once_the_send_grace_has_passed(
    client_settings, echo_worker, redis_url, monkeypatch
):
    store = redis.Redis.from_url(redis_url)

    def died_unsent(text: str, seconds_ago: float):  # a first try that saved its meta, then died before sending
        key = f"order-{uuid.uuid4().hex}"
        job = chat_job(ask(text), "echo")
        meta = meta_of(idempotent_job_id(None, key), job, digest=request_digest(job))
        meta = meta.model_copy(update={"queued_at": time.time() - seconds_ago})
        store.set(names.job_key(meta.job_id), meta.model_dump_json(), ex=3600)
        return key, meta.job_id

    # within its grace (40 s old, an hour's grace): the retry waits, sending nothing, until the first try is sent
    key, job_id = died_unsent("still in its grace", 40)
    patient = client_settings.model_copy(update={"send_grace_s": 3600})
    async with AsyncInferQClient(model="echo", settings=patient) as client:
        looks = looks_at_first_try(monkeypatch, client.store)
        retry = asyncio.create_task(client.submit_chat(ask("still in its grace"), idempotency_key=key))
        await until(lambda: looks.count >= 3 or retry.done(), "the retry never looked at its first try")
        assert not retry.done() and not store.exists(names.resend_key(job_id))
        store.set(names.sent_key(job_id), "1", ex=3600)  # as the first try would, had it gone on
        assert (await retry).id == job_id and not store.exists(names.resend_key(job_id))
    # past its grace (10 s old, 5 s of grace; the default 30 s would still wait): one look, and it sends the job
    key, job_id = died_unsent("sent after the grace", 10)
    brisk = client_settings.model_copy(update={"send_grace_s": 5})
    async with AsyncInferQClient(model="echo", settings=brisk) as client:
        looks = looks_at_first_try(monkeypatch, client.store)
        handle = await client.submit_chat(ask("sent after the grace"), idempotency_key=key)
        assert handle.id == job_id and looks.count == 1 and store.exists(names.resend_key(job_id))
        assert (await handle.result(timeout=120)).responses[0].response_text == "sent after the grace"


async def cancelled_while_its_message_goes_out(monkeypatch, client, call) -> None:
    """Runs `call` (a coroutine that submits a job) and cancels it while its message is on its way out (a publish
    that takes its time: kombu retrying a broker, say), then lets the send finish."""
    real, going_out, go_on = client._celery.send_task, threading.Event(), threading.Event()

    def send_task(*args, **kwargs):
        going_out.set()
        go_on.wait(120)
        return real(*args, **kwargs)

    monkeypatch.setattr(client._celery, "send_task", send_task)
    running = asyncio.ensure_future(call)
    await until(going_out.is_set, "the send never started")
    running.cancel()
    await asyncio.sleep(0)  # the cancel reaches the call while its send is under way
    go_on.set()
    with pytest.raises(asyncio.CancelledError):
        await running


async def test_a_submit_cancelled_while_its_message_goes_out_keeps_its_job(aclient, echo_worker, monkeypatch):
    key = f"order-{uuid.uuid4().hex}"
    submit = aclient.submit_chat(ask("it went out"), idempotency_key=key)
    await cancelled_while_its_message_goes_out(monkeypatch, aclient, submit)
    handle = await aclient.find_job(idempotent_job_id(None, key))
    assert handle is not None, "the job was queued but its meta forgotten"
    assert (await handle.result(timeout=120)).responses[0].response_text == "it went out"


async def test_a_chat_call_cancelled_while_its_message_goes_out_cancels_its_job(aclient, echo_worker, monkeypatch):
    # achat owns its job: cancelled before it held the handle (a caller's timeout, Ctrl-C in the sync client),
    # the job would otherwise run for nobody
    key = f"order-{uuid.uuid4().hex}"
    call = aclient.achat(ask("nobody waits for this [hold]"), idempotency_key=key)
    await cancelled_while_its_message_goes_out(monkeypatch, aclient, call)
    handle = await aclient.find_job(idempotent_job_id(None, key))
    assert handle is not None  # it went out, and was cancelled, not forgotten
    with pytest.raises(JobCancelled):
        await handle.result(timeout=120)


async def test_a_submit_cancelled_as_it_marks_its_message_sent_leaves_the_mark(
    aclient, echo_worker, redis_url, monkeypatch
):
    real, marking, go_on = aclient.store.mark_sent, asyncio.Event(), asyncio.Event()

    async def mark_sent(job_id):  # the mark's round trip, held until the test lets it go
        marking.set()
        await go_on.wait()
        await real(job_id)

    monkeypatch.setattr(aclient.store, "mark_sent", mark_sent)
    key = f"order-{uuid.uuid4().hex}"
    job_id = idempotent_job_id(None, key)
    submit = asyncio.ensure_future(aclient.submit_chat(ask("marked"), idempotency_key=key))
    await until(marking.is_set, "the submit never marked its message sent")
    submit.cancel()  # the message went out; the cancel comes as the mark is on its way
    await asyncio.sleep(0)
    go_on.set()
    with pytest.raises(asyncio.CancelledError):
        await submit
    # marked all the same: a retry finds the job sent, instead of sending it again once the grace has passed
    assert redis.Redis.from_url(redis_url).exists(names.sent_key(job_id))
    monkeypatch.setattr(aclient.store, "mark_sent", real)
    handle = await aclient.submit_chat(ask("marked"), idempotency_key=key)
    assert handle.id == job_id and (await handle.result(timeout=120)).responses[0].response_text == "marked"


@pytest.mark.redis_broker
async def test_a_plain_submit_writes_its_meta_in_the_push_of_its_message(aclient, echo_worker, monkeypatch):
    async def no_round_trip_of_its_own(meta):
        raise AssertionError("the meta took a round trip of its own")

    monkeypatch.setattr(aclient.store, "save_meta", no_round_trip_of_its_own)
    handle = await aclient.submit_chat(ask("it rode along [hold]"))
    assert await aclient.find_job(handle.id) is not None
    await handle.cancel()


async def test_a_job_is_found_by_another_process_the_moment_its_submit_returns(aclient, client_settings):
    # Nothing serves this model: the job stays queued, and only its meta says it exists.
    handle = await aclient.submit_chat(ask("waiting"), model=f"unserved-{uuid.uuid4().hex}")
    async with AsyncInferQClient(settings=client_settings) as elsewhere:
        found = await elsewhere.find_job(handle.id)
    assert found is not None and found.meta == handle.meta
    await handle.cancel()
