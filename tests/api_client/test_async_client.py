"""The async client against a real echo worker (a separate process) on a real Redis.

Twin of test_client.py, test for test (tests/api_client/test_twins.py checks that). Jobs are built
so that they cannot end before the test says so (`[hold]`, `[wait:PATH]`): nothing here bets on speed.
"""

import asyncio
import os
import subprocess
import sys
import textwrap
import time
import uuid

import pytest
import redis

from api_client import (
    AsyncInferQClient,
    ClientClosed,
    InvalidRequest,
    JobCancelled,
    JobExpired,
    JobFailed,
    JobLost,
    JobTimeout,
    NoSuchModel,
    OwnerQuota,
    QuotaExceeded,
)
from api_client.jobs import chat_job, idempotent_job_id, meta_of, request_digest
from tasks import names
from tasks.schemas import FinalEvent, JobStatus, TokenEvent
from tests.api_client.conftest import FEW_SOCKETS, looks_at_first_try
from tests.waiting import GROWING_LIMITS_S, streamed_text, until

BAD_TAGS = [
    ({"not a name": "x"}, "tags"),
    ({"line": ""}, "tags.line"),
    ({"line": "x" * 129}, "tags.line"),
    ({f"tag{i}": "x" for i in range(9)}, "tags"),
]


def ask(text):
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
async def aclient(client_settings):
    async with AsyncInferQClient(model="echo", settings=client_settings) as client:
        yield client


async def test_chat_returns_responses(aclient, echo_worker):
    [response] = await aclient.achat(ask("the capital of France is Paris"))
    assert (response.response_text, response.finish_reason) == ("the capital of France is Paris", "stop")
    assert response.response_length == 7 and response.prompt_length == 8  # 6 words + end of turn; + 2 role words


async def test_joined_stream_equals_chat_and_every_sequence_number_arrives_once(aclient, echo_worker):
    handle = await aclient.submit_chat(ask("one two three four five"))
    events = [event async for event in handle.events()]
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert isinstance(events[-1], FinalEvent)
    text = "".join(event.text for event in events if isinstance(event, TokenEvent))
    assert text == events[-1].record.responses[0].response_text == "one two three four five"
    assert "".join([piece async for piece in aclient.astream_chat(ask("one two three four five"))]) == text


async def test_a_late_subscriber_gets_every_delta(aclient, echo_worker, release):
    wait, let_go = release()
    handle = await aclient.submit_chat(ask(f"early {wait} late"))
    stream = handle.stream()
    assert await anext(stream) == "early"  # the job is surely halfway: it waits for the test
    late = handle.stream()  # a second reader arrives mid-job
    let_go()
    assert [piece async for piece in late] == ["early", f" {wait}", " late"]
    assert [piece async for piece in stream] == [f" {wait}", " late"]
    assert [piece async for piece in handle.stream()] == ["early", f" {wait}", " late"]  # after the end


async def test_record_carries_usage_timings_and_worker(aclient, echo_worker):
    record = await (await aclient.submit_chat(ask("a b c"))).result(timeout=60)
    assert (record.status, record.kind, record.model, record.engine) == (JobStatus.SUCCEEDED, "chat", "echo", "echo")
    assert record.worker == echo_worker.hostname and record.attempt == 1
    assert (record.usage.prompt_tokens, record.usage.completion_tokens) == (5, 4)  # "user:" and "assistant:" too
    timings = record.timings
    assert timings.queued_at <= timings.started_at <= timings.first_token_at <= timings.finished_at


async def test_n_answers(aclient, echo_worker):
    responses = await aclient.achat(ask("x y z"), n=3, max_new_tokens=2)
    assert [(r.response_text, r.finish_reason) for r in responses] == [("x y", "length")] * 3


async def test_scores(aclient, echo_scorer_worker):
    assert await aclient.aget_scores(["two words", "and three words"], "echo-rm") == [2.0, 3.0]
    # LLaMA-Factory's ChatModel.get_scores(batch_input): its users' keyword works as it is
    assert await aclient.aget_scores(batch_input=["one more"], model="echo-rm") == [2.0]
    with pytest.raises(InvalidRequest) as caught:
        await aclient.aget_scores(["a"], "echo-rm", batch_input=["b"])
    assert caught.value.field == "batch_input"


async def test_conversations_are_scored_as_the_models_chat_template_writes_them(aclient, echo_scorer_worker):
    conversation = [{"role": "user", "content": "two words"}, {"role": "assistant", "content": "three more words"}]
    # the echo template writes "user: two words\nassistant: three more words": 7 words
    assert await aclient.aget_scores(conversations=[conversation], model="echo-rm") == [7.0]
    with pytest.raises(InvalidRequest):
        await aclient.aget_scores(["a text"], "echo-rm", conversations=[conversation])  # one or the other


async def test_cancel_mid_stream_keeps_the_text_so_far(aclient, echo_worker):
    handle = await aclient.submit_chat(ask("first second [hold] never"))
    stream = handle.stream()
    seen = [await anext(stream), await anext(stream)]
    await handle.cancel()
    with pytest.raises(JobCancelled) as caught:
        await handle.result(timeout=60)
    [response] = caught.value.record.responses
    assert (response.response_text, response.finish_reason) == ("".join(seen), "abort") == ("first second", "abort")
    assert caught.value.record.status == JobStatus.CANCELLED


async def test_cancel_while_queued(aclient):
    handle = await aclient.submit_chat(ask("x"), "nobody-serves-this")
    await handle.cancel()
    with pytest.raises(JobCancelled, match="queued") as caught:
        await handle.result(timeout=60)
    assert caught.value.record.responses is None


async def test_a_job_for_a_model_nobody_serves_fails_after_the_grace(aclient, echo_worker):
    with pytest.raises(NoSuchModel) as caught:
        await aclient.achat(ask("x"), "ghost-model")  # no deadline: the grace ends the wait
    assert caught.value.field == "model" and "'ghost-model'" in str(caught.value) and "echo" in str(caught.value)
    assert caught.value.record.status == JobStatus.EXPIRED


async def test_a_job_whose_deadline_passes_while_queued_expires(aclient, echo_worker):
    handle = await aclient.submit_chat(ask("x"), "ghost-model", deadline_s=0.5)  # shorter than the grace
    with pytest.raises(JobExpired, match="deadline passed while the job was queued") as caught:
        await handle.result(timeout=60)
    assert caught.value.record.status == JobStatus.EXPIRED


@pytest.mark.parametrize(
    ("messages", "params", "field"),
    [
        ([{"role": "robot", "content": "x"}], {}, "messages.0.role"),
        ([], {}, "messages"),
        (ask("x"), {"temperature": -1}, "temperature"),
        (ask("x"), {"top_k": "many"}, "top_k"),
        (ask("x"), {"n": 1000}, "n"),
        (ask("x"), {"deadline_s": 0}, "deadline_s"),
        (ask("x"), {"priority": 12}, "priority"),
        (ask("x"), {"priority": True}, "priority"),
        (ask("x"), {"seed": 2**64}, "seed"),
        (ask("x"), {"temperature": "0.5"}, "temperature"),
        (ask("x"), {"temperature": float("inf")}, "temperature"),
        (ask("x"), {"n": True}, "n"),
        (ask("x"), {"stop": ["s"] * 10_000}, "stop"),
        (ask("x"), {"max_runtime_s": float("inf")}, "max_runtime_s"),
        (ask("x"), {"deadline_s": 1e12}, "deadline_s"),
        (ask("x") * 2000, {}, "messages"),
        (ask("x" * 5_000_000), {}, "messages"),  # more text than any context holds
        (ask("x"), {"images": ["x" * 5_000_000]}, "payload"),  # a job over INFERQ_MAX_PAYLOAD_BYTES
    ],
)
async def test_bad_input_is_refused_before_anything_is_sent(aclient, messages, params, field):
    with pytest.raises(InvalidRequest) as caught:
        await aclient.submit_chat(messages, **params)
    assert caught.value.field == field


async def test_a_job_records_its_owner(aclient, client_settings, echo_worker):
    async with AsyncInferQClient(owner="team-x", settings=client_settings) as owned:
        assert (await owned.submit_chat(ask("mine"), "echo")).meta.owner == "team-x"
        assert (await owned.submit_chat(ask("theirs"), "echo", owner="team-y")).meta.owner == "team-y"
        found = await aclient.find_job((await owned.submit_chat(ask("found"), "echo")).id)
        assert found.meta.owner == "team-x"


async def test_an_owner_with_its_quota_in_flight_is_refused_until_a_job_ends(aclient, echo_worker):
    quota = OwnerQuota(max_jobs=2)
    held = [await aclient.submit_chat(ask(f"held {i} [hold]"), owner="async-quota", quota=quota) for i in range(2)]
    with pytest.raises(QuotaExceeded) as caught:
        await aclient.submit_chat(ask("one too many"), owner="async-quota", quota=quota)
    assert caught.value.field == "owner" and "2 jobs queued or running" in caught.value.message
    await held[0].cancel()
    with pytest.raises(JobCancelled):
        await held[0].result(timeout=60)
    assert (await aclient.achat(ask("room again"), owner="async-quota", quota=quota))[0].response_text == "room again"
    await held[1].cancel()


async def test_an_unexpected_engine_error_ends_in_a_failed_record(aclient, echo_worker):
    handle = await aclient.submit_chat(ask("fine until [fail]"))
    with pytest.raises(JobFailed, match="RuntimeError: echo: the \\[fail\\] directive") as caught:
        await handle.result(timeout=60)
    assert caught.value.record.status == JobStatus.FAILED and "Traceback" not in caught.value.message


async def test_a_handle_can_be_found_again_by_id(aclient, echo_worker):
    handle = await aclient.submit_chat(ask("find me"))
    again = await aclient.find_job(handle.id)
    assert await again.result(timeout=60) == await handle.result(timeout=60)
    assert await aclient.find_job("no-such-job") is None


async def test_a_job_that_vanished_from_redis_is_reported_not_waited_for(aclient, redis_url):
    handle = await aclient.submit_chat(ask("x"), "nobody-serves-this-either")
    redis.Redis.from_url(redis_url).delete(f"inferq:job:{handle.id}")  # as a restart without persistence would
    with pytest.raises(JobLost, match="gone from Redis"):
        await handle.result()  # no timeout: the wait ends anyway


async def test_a_handle_timeout_stops_the_wait_not_the_job(aclient, echo_worker, release):
    wait, let_go = release()
    handle = await aclient.submit_chat(ask(f"{wait} done"))
    with pytest.raises(JobTimeout):
        await handle.result(timeout=0.5)
    let_go()
    assert (await handle.result(timeout=60)).responses[0].response_text == f"{wait} done"


async def test_a_chat_timeout_stops_the_wait_and_the_job(aclient, echo_worker, latest_job_id):
    with pytest.raises(JobTimeout):
        await aclient.achat(ask("[hold]"), timeout=0.5)
    handle = await aclient.find_job(latest_job_id())
    with pytest.raises(JobCancelled):
        await handle.result(timeout=60)


async def test_a_stream_timeout_stops_the_stream_and_the_job(aclient, echo_worker, latest_job_id):
    # a run whose job had streamed nothing by the timeout (a loaded machine can hold it back for seconds) proves
    # nothing, and is tried again with a longer one
    for timeout in GROWING_LIMITS_S:
        with pytest.raises(JobTimeout):
            async for _ in aclient.astream_chat(ask("tick [hold]"), timeout=timeout):
                pass
        handle = await aclient.find_job(latest_job_id())
        with pytest.raises(JobCancelled) as caught:
            await handle.result(timeout=60)
        if streamed_text(caught.value.record):
            break
    assert caught.value.record.responses[0].response_text == "tick"


async def test_closing_a_stream_early_cancels_its_job(aclient, echo_worker, latest_job_id):
    stream = aclient.astream_chat(ask("one [hold]"))
    assert await anext(stream) == "one"
    await stream.aclose()
    handle = await aclient.find_job(latest_job_id())
    with pytest.raises(JobCancelled) as caught:
        await handle.result(timeout=60)
    assert caught.value.record.responses[0].finish_reason == "abort"


async def test_hundreds_of_concurrent_jobs_share_a_few_connections(aclient, echo_worker, redis_sockets):
    results = await asyncio.gather(*[aclient.achat(ask(f"job {i}")) for i in range(300)])
    assert [r[0].response_text for r in results] == [f"job {i}" for i in range(300)]
    assert redis_sockets() <= FEW_SOCKETS


async def test_an_abandoned_stream_is_closed_and_its_job_cancelled(aclient, echo_worker, latest_job_id):
    stream = aclient.astream_chat(ask("left [hold]"))
    assert await anext(stream) == "left"
    del stream  # never closed: the event loop's async-generator finalizer closes it
    handle = await aclient.find_job(latest_job_id())
    with pytest.raises(JobCancelled):
        await handle.result(timeout=60)


async def test_a_script_that_leaves_a_stream_open_still_exits(aclient, redis_url, echo_worker, latest_job_id):
    script = textwrap.dedent(
        """
        import asyncio
        from api_client import AsyncInferQClient

        async def main():
            client = AsyncInferQClient(model="echo")
            stream = (await client.submit_chat([{"role": "user", "content": "a [hold]"}])).stream()
            print(await anext(stream), flush=True)

        asyncio.run(main())
        """
    )  # the script ends with the stream, the handle and the client all open
    done = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, "INFERQ_REDIS_URL": redis_url},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (done.returncode, done.stdout.strip()) == (0, "a"), done.stderr
    await (await aclient.find_job(latest_job_id())).cancel()  # the job itself would hold until cancelled


async def test_the_same_idempotency_key_is_the_same_job_and_it_runs_once(aclient, echo_worker):
    key = f"order-{uuid.uuid4().hex}"
    first = await aclient.submit_chat(ask("paid once"), idempotency_key=key)
    done = await first.result(timeout=120)
    again = await aclient.submit_chat(ask("paid once"), idempotency_key=key)  # a producer's retry after a timeout
    assert again.id == first.id and await again.result(timeout=120) == done and done.attempt == 1
    assert (await aclient.submit_chat(ask("paid once"), idempotency_key=f"{key}-2")).id != first.id
    with pytest.raises(InvalidRequest) as refused:
        await aclient.submit_chat(ask("something else"), idempotency_key=key)
    assert refused.value.field == "idempotency_key"


async def test_retries_of_a_queued_job_send_nothing_and_it_runs_once(aclient, start_worker):
    worker = start_worker("echo", "idem-held", engine="echo", concurrency=1)
    holder = await aclient.submit_chat(ask("the only slot [hold]"), "idem-held")
    await until(lambda: aclient.store.is_running(holder.id), "the holder never ran")
    key = f"order-{uuid.uuid4().hex}"
    first = await aclient.submit_chat(ask("queued once"), "idem-held", idempotency_key=key)
    for _ in range(5):  # a producer retrying while the job waits, each time at the top priority
        again = await aclient.submit_chat(ask("queued once"), "idem-held", idempotency_key=key, priority=0)
        assert again.id == first.id
    assert (await aclient.store.queues.info("idem-held")).depth == 1  # one message, not six
    await holder.cancel()
    assert (await first.result(timeout=120)).attempt == 1
    worker.stop()


async def test_a_retry_beside_a_first_try_refused_by_its_quota_is_refused_too(
    aclient, echo_worker, redis_url, monkeypatch
):
    """The retry finds the first try's meta, unsent, and waits; the first try is refused and forgets it; the
    retry then claims the key itself and meets the same quota: no job runs past it."""
    quota, owner = OwnerQuota(max_jobs=1), f"quota-{uuid.uuid4().hex}"
    held = await aclient.submit_chat(ask("the quota's one job [hold]"), owner=owner, quota=quota)
    key = f"order-{uuid.uuid4().hex}"
    job = chat_job(ask("one too many"), "echo")
    first_try = meta_of(idempotent_job_id(owner, key), job, owner, digest=request_digest(job))
    store = redis.Redis.from_url(redis_url)
    store.set(names.job_key(first_try.job_id), first_try.model_dump_json(), ex=3600)  # claimed, not yet sent
    waiting = looks_at_first_try(monkeypatch, aclient.store).seen
    retry = asyncio.ensure_future(aclient.submit_chat(ask("one too many"), owner=owner, quota=quota,
                                                      idempotency_key=key))  # fmt: skip
    await until(waiting.is_set, "the retry never waited for its first try")
    store.delete(names.job_key(first_try.job_id))  # the first try's refusal, while the retry waits for it
    with pytest.raises(QuotaExceeded):
        await asyncio.wait_for(retry, 120)
    assert await aclient.store.record(first_try.job_id) is None and not store.exists(names.sent_key(first_try.job_id))
    await held.cancel()


async def test_a_jobs_tags_are_kept_in_its_meta_and_bad_ones_are_refused_by_field(aclient, echo_worker):
    handle = await aclient.submit_chat(ask("tagged"), tags={"batch": "b1", "line": "7"})
    assert (await aclient.find_job(handle.id)).meta.tags == {"batch": "b1", "line": "7"}  # in Redis, for everyone
    await handle.result(timeout=120)
    for tags, field in BAD_TAGS:
        with pytest.raises(InvalidRequest) as refused:
            await aclient.submit_chat(ask("tagged"), tags=tags)
        assert refused.value.field == field


async def test_a_retry_sends_the_job_its_first_try_died_before_sending(aclient, echo_worker, redis_url):
    key = f"order-{uuid.uuid4().hex}"
    job = chat_job(ask("sent at last"), "echo")
    meta = meta_of(idempotent_job_id(None, key), job, digest=request_digest(job))
    meta = meta.model_copy(update={"queued_at": time.time() - 60})  # a minute ago, past the send grace
    redis.Redis.from_url(redis_url).set(names.job_key(meta.job_id), meta.model_dump_json(), ex=3600)  # all it did
    handle = await aclient.submit_chat(ask("sent at last"), idempotency_key=key)
    assert handle.id == meta.job_id
    assert (await handle.result(timeout=120)).responses[0].response_text == "sent at last"


async def test_a_stream_cut_by_the_callers_own_timeout_cancels_its_job(aclient, echo_worker, latest_job_id):
    stream = aclient.astream_chat(ask("one [hold]"))
    assert await anext(stream) == "one"
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):  # the next token never comes: the timeout always fires
            await anext(stream)
    with pytest.raises(JobCancelled) as caught:
        await (await aclient.find_job(latest_job_id())).result(timeout=60)
    assert caught.value.record.responses[0].response_text == "one"


async def test_closing_the_client_wakes_whoever_waits_on_it(aclient, client_settings, echo_worker):
    closing = AsyncInferQClient(model="echo", settings=client_settings)
    handle = await closing.submit_chat(ask("[hold]"))
    waiter = asyncio.ensure_future(handle.result())
    await until(lambda: closing.store.hub.num_channels > 0, "the waiter never followed its job")
    await closing.aclose()  # from another task than the waiter's
    with pytest.raises(ClientClosed):
        await asyncio.wait_for(waiter, 300)  # the bound only turns a hang into a failure
    await (await aclient.find_job(handle.id)).cancel()  # the job went on: another client finds it
