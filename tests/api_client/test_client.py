"""The sync client against a real echo worker (a separate process) on a real Redis.

Twin of test_async_client.py, test for test (tests/api_client/test_twins.py checks that). Jobs are
built so that they cannot end before the test says so (`[hold]`, `[wait:PATH]`).
"""

import asyncio
import gc
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest
import redis

from api_client import (
    ClientClosed,
    InferQClient,
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
from tests.waiting import GROWING_LIMITS_S, streamed_text

BAD_TAGS = [
    ({"not a name": "x"}, "tags"),
    ({"line": ""}, "tags.line"),
    ({"line": "x" * 129}, "tags.line"),
    ({f"tag{i}": "x" for i in range(9)}, "tags"),
]


def ask(text):
    return [{"role": "user", "content": text}]


def test_chat_returns_responses(client, echo_worker):
    [response] = client.chat(ask("the capital of France is Paris"), "echo")
    assert (response.response_text, response.finish_reason) == ("the capital of France is Paris", "stop")
    assert response.response_length == 7 and response.prompt_length == 8  # 6 words + end of turn; + 2 role words


def test_joined_stream_equals_chat_and_every_sequence_number_arrives_once(client, echo_worker):
    handle = client.submit_chat(ask("one two three four five"), "echo")
    events = list(handle.events())
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert isinstance(events[-1], FinalEvent)
    text = "".join(event.text for event in events if isinstance(event, TokenEvent))
    assert text == events[-1].record.responses[0].response_text == "one two three four five"
    assert "".join(client.stream_chat(ask("one two three four five"), "echo")) == text


def test_a_late_subscriber_gets_every_delta(client, echo_worker, release):
    wait, let_go = release()
    handle = client.submit_chat(ask(f"early {wait} late"), "echo")
    stream = handle.stream()
    assert next(stream) == "early"  # the job is surely halfway: it waits for the test
    late = handle.stream()  # a second reader arrives mid-job
    let_go()
    assert list(late) == ["early", f" {wait}", " late"]
    assert list(stream) == [f" {wait}", " late"]
    assert list(handle.stream()) == ["early", f" {wait}", " late"]  # after the end


def test_record_carries_usage_timings_and_worker(client, echo_worker):
    record = client.submit_chat(ask("a b c"), "echo").result(timeout=60)
    assert (record.status, record.kind, record.model, record.engine) == (JobStatus.SUCCEEDED, "chat", "echo", "echo")
    assert record.worker == echo_worker.hostname and record.attempt == 1
    assert (record.usage.prompt_tokens, record.usage.completion_tokens) == (5, 4)  # "user:" and "assistant:" too
    timings = record.timings
    assert timings.queued_at <= timings.started_at <= timings.first_token_at <= timings.finished_at


def test_n_answers(client, echo_worker):
    responses = client.chat(ask("x y z"), "echo", n=3, max_new_tokens=2)
    assert [(r.response_text, r.finish_reason) for r in responses] == [("x y", "length")] * 3


def test_scores(client, echo_scorer_worker):
    assert client.get_scores(["two words", "and three words"], "echo-rm") == [2.0, 3.0]
    # LLaMA-Factory's ChatModel.get_scores(batch_input): its users' keyword works as it is
    assert client.get_scores(batch_input=["one more"], model="echo-rm") == [2.0]
    with pytest.raises(InvalidRequest) as caught:
        client.get_scores(["a"], "echo-rm", batch_input=["b"])
    assert caught.value.field == "batch_input"


def test_conversations_are_scored_as_the_models_chat_template_writes_them(client, echo_scorer_worker):
    conversation = [{"role": "user", "content": "two words"}, {"role": "assistant", "content": "three more words"}]
    # the echo template writes "user: two words\nassistant: three more words": 7 words
    assert client.get_scores(conversations=[conversation], model="echo-rm") == [7.0]
    with pytest.raises(InvalidRequest):
        client.get_scores(["a text"], "echo-rm", conversations=[conversation])  # one or the other


def test_cancel_mid_stream_keeps_the_text_so_far(client, echo_worker):
    handle = client.submit_chat(ask("first second [hold] never"), "echo")
    stream = handle.stream()
    seen = [next(stream), next(stream)]
    handle.cancel()
    with pytest.raises(JobCancelled) as caught:
        handle.result(timeout=60)
    [response] = caught.value.record.responses
    assert (response.response_text, response.finish_reason) == ("".join(seen), "abort") == ("first second", "abort")
    assert caught.value.record.status == JobStatus.CANCELLED


def test_cancel_while_queued(client):
    handle = client.submit_chat(ask("x"), "nobody-serves-this")
    handle.cancel()
    with pytest.raises(JobCancelled, match="queued") as caught:
        handle.result(timeout=60)
    assert caught.value.record.responses is None


def test_a_job_for_a_model_nobody_serves_fails_after_the_grace(client, echo_worker):
    with pytest.raises(NoSuchModel) as caught:
        client.chat(ask("x"), "ghost-model")  # no deadline: the grace ends the wait
    assert caught.value.field == "model" and "'ghost-model'" in str(caught.value) and "echo" in str(caught.value)
    assert caught.value.record.status == JobStatus.EXPIRED


def test_a_job_whose_deadline_passes_while_queued_expires(client, echo_worker):
    handle = client.submit_chat(ask("x"), "ghost-model", deadline_s=0.5)  # shorter than the grace
    with pytest.raises(JobExpired, match="deadline passed while the job was queued") as caught:
        handle.result(timeout=60)
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
def test_bad_input_is_refused_before_anything_is_sent(client, messages, params, field):
    with pytest.raises(InvalidRequest) as caught:
        client.submit_chat(messages, "echo", **params)
    assert caught.value.field == field


def test_a_job_records_its_owner(client, client_settings, echo_worker):
    with InferQClient(owner="team-x", settings=client_settings) as owned:
        assert owned.submit_chat(ask("mine"), "echo").meta.owner == "team-x"
        assert owned.submit_chat(ask("theirs"), "echo", owner="team-y").meta.owner == "team-y"
        assert client.find_job(owned.submit_chat(ask("found"), "echo").id).meta.owner == "team-x"


def test_an_owner_with_its_quota_in_flight_is_refused_until_a_job_ends(client, echo_worker):
    quota = OwnerQuota(max_jobs=2)
    held = [client.submit_chat(ask(f"held {i} [hold]"), "echo", owner="sync-quota", quota=quota) for i in range(2)]
    with pytest.raises(QuotaExceeded) as caught:
        client.submit_chat(ask("one too many"), "echo", owner="sync-quota", quota=quota)
    assert caught.value.field == "owner" and "2 jobs queued or running" in caught.value.message
    held[0].cancel()
    with pytest.raises(JobCancelled):
        held[0].result(timeout=60)
    assert client.chat(ask("room again"), "echo", owner="sync-quota", quota=quota)[0].response_text == "room again"
    held[1].cancel()


def test_an_unexpected_engine_error_ends_in_a_failed_record(client, echo_worker):
    handle = client.submit_chat(ask("fine until [fail]"), "echo")
    with pytest.raises(JobFailed, match="RuntimeError: echo: the \\[fail\\] directive") as caught:
        handle.result(timeout=60)
    assert caught.value.record.status == JobStatus.FAILED and "Traceback" not in caught.value.message


def test_a_handle_can_be_found_again_by_id(client, echo_worker):
    handle = client.submit_chat(ask("find me"), "echo")
    again = client.find_job(handle.id)
    assert again.result(timeout=60) == handle.result(timeout=60)
    assert client.find_job("no-such-job") is None


def test_a_job_that_vanished_from_redis_is_reported_not_waited_for(client, redis_url):
    handle = client.submit_chat(ask("x"), "nobody-serves-this-either")
    redis.Redis.from_url(redis_url).delete(f"inferq:job:{handle.id}")  # as a restart without persistence would
    with pytest.raises(JobLost, match="gone from Redis"):
        handle.result()  # no timeout: the wait ends anyway


def test_a_handle_timeout_stops_the_wait_not_the_job(client, echo_worker, release):
    wait, let_go = release()
    handle = client.submit_chat(ask(f"{wait} done"), "echo")
    with pytest.raises(JobTimeout):
        handle.result(timeout=0.5)
    let_go()
    assert handle.result(timeout=60).responses[0].response_text == f"{wait} done"


def test_a_chat_timeout_stops_the_wait_and_the_job(client, echo_worker, latest_job_id):
    with pytest.raises(JobTimeout):
        client.chat(ask("[hold]"), "echo", timeout=0.5)
    with pytest.raises(JobCancelled):
        client.find_job(latest_job_id()).result(timeout=60)


def test_a_stream_timeout_stops_the_stream_and_the_job(client, echo_worker, latest_job_id):
    # a run whose job had streamed nothing by the timeout (a loaded machine can hold it back for seconds) proves
    # nothing, and is tried again with a longer one
    for timeout in GROWING_LIMITS_S:
        with pytest.raises(JobTimeout):
            for _ in client.stream_chat(ask("tick [hold]"), "echo", timeout=timeout):
                pass
        with pytest.raises(JobCancelled) as caught:
            client.find_job(latest_job_id()).result(timeout=60)
        if streamed_text(caught.value.record):
            break
    assert caught.value.record.responses[0].response_text == "tick"


def test_closing_a_stream_early_cancels_its_job(client, echo_worker, latest_job_id):
    stream = client.stream_chat(ask("one [hold]"), "echo")
    assert next(stream) == "one"
    stream.close()
    with pytest.raises(JobCancelled) as caught:
        client.find_job(latest_job_id()).result(timeout=60)
    assert caught.value.record.responses[0].finish_reason == "abort"


def test_hundreds_of_concurrent_jobs_share_a_few_connections(client, echo_worker, redis_sockets):
    results = [None] * 300

    def chat(i):
        results[i] = client.chat(ask(f"job {i}"), "echo")[0].response_text

    threads = [threading.Thread(target=chat, args=(i,)) for i in range(300)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [f"job {i}" for i in range(300)]
    assert redis_sockets() <= FEW_SOCKETS


def test_an_abandoned_stream_is_closed_and_its_job_cancelled(client, echo_worker, latest_job_id):
    stream = client.stream_chat(ask("left [hold]"), "echo")
    assert next(stream) == "left"
    # Finalized on the client's own loop thread, as the garbage collector may: no deadlock either.
    client._loop.run(_close_there(stream))
    del stream
    gc.collect()
    with pytest.raises(JobCancelled):
        client.find_job(latest_job_id()).result(timeout=60)


async def _close_there(generator):
    generator.close()


def test_a_script_that_leaves_a_stream_open_still_exits(client, redis_url, echo_worker, latest_job_id):
    script = textwrap.dedent(
        """
        from api_client import InferQClient
        client = InferQClient(model="echo")
        stream = iter(client.submit_chat([{"role": "user", "content": "a [hold]"}]).stream())
        print(next(stream), flush=True)
        """
    )  # the script ends with the stream, the handle and the client all open
    done = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, "INFERQ_REDIS_URL": redis_url},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (done.returncode, done.stdout.strip()) == (0, "a"), done.stderr
    client.find_job(latest_job_id()).cancel()  # the job itself would hold until cancelled


def test_the_same_idempotency_key_is_the_same_job_and_it_runs_once(client, echo_worker):
    key = f"order-{uuid.uuid4().hex}"
    first = client.submit_chat(ask("paid once"), "echo", idempotency_key=key)
    done = first.result(timeout=120)
    again = client.submit_chat(ask("paid once"), "echo", idempotency_key=key)  # a producer's retry after a timeout
    assert again.id == first.id and again.result(timeout=120) == done and done.attempt == 1
    assert client.submit_chat(ask("paid once"), "echo", idempotency_key=f"{key}-2").id != first.id
    with pytest.raises(InvalidRequest) as refused:
        client.submit_chat(ask("something else"), "echo", idempotency_key=key)
    assert refused.value.field == "idempotency_key"


def test_retries_of_a_queued_job_send_nothing_and_it_runs_once(client, start_worker, redis_url):
    worker = start_worker("echo", "idem-held-sync", engine="echo", concurrency=1)
    holder = client.submit_chat(ask("the only slot [hold]"), "idem-held-sync")
    assert next(holder.stream()) == "the"  # running: it holds the one slot
    key = f"order-{uuid.uuid4().hex}"
    first = client.submit_chat(ask("queued once"), "idem-held-sync", idempotency_key=key)
    for _ in range(5):  # a producer retrying while the job waits, each time at the top priority
        assert client.submit_chat(ask("queued once"), "idem-held-sync", idempotency_key=key, priority=0).id == first.id
    [queue] = [info for info in client.queues() if info.model == "idem-held-sync"]
    assert queue.depth == 1  # one message, not six
    holder.cancel()
    assert first.result(timeout=120).attempt == 1
    worker.stop()


def test_a_retry_beside_a_first_try_refused_by_its_quota_is_refused_too(client, echo_worker, redis_url, monkeypatch):
    """The retry finds the first try's meta, unsent, and waits; the first try is refused and forgets it (here
    once the retry is seen waiting); the retry then claims the key itself and meets the same quota."""
    quota, owner = OwnerQuota(max_jobs=1), f"quota-{uuid.uuid4().hex}"
    held = client.submit_chat(ask("the quota's one job [hold]"), "echo", owner=owner, quota=quota)
    key = f"order-{uuid.uuid4().hex}"
    job = chat_job(ask("one too many"), "echo")
    first_try = meta_of(idempotent_job_id(owner, key), job, owner, digest=request_digest(job))
    store = redis.Redis.from_url(redis_url)
    store.set(names.job_key(first_try.job_id), first_try.model_dump_json(), ex=3600)  # claimed, not yet sent
    waiting = looks_at_first_try(monkeypatch, client._client.store).seen
    refusal = threading.Thread(target=lambda: waiting.wait(120) and store.delete(names.job_key(first_try.job_id)))
    refusal.start()  # the first try's refusal, while the retry waits for it
    with pytest.raises(QuotaExceeded):
        client.submit_chat(ask("one too many"), "echo", owner=owner, quota=quota, idempotency_key=key)
    refusal.join()
    assert waiting.is_set()
    assert not store.exists(names.sent_key(first_try.job_id)) and not store.exists(names.record_key(first_try.job_id))
    held.cancel()


def test_a_jobs_tags_are_kept_in_its_meta_and_bad_ones_are_refused_by_field(client, echo_worker):
    handle = client.submit_chat(ask("tagged"), "echo", tags={"batch": "b1", "line": "7"})
    assert client.find_job(handle.id).meta.tags == {"batch": "b1", "line": "7"}  # in Redis, for everyone
    handle.result(timeout=120)
    for tags, field in BAD_TAGS:
        with pytest.raises(InvalidRequest) as refused:
            client.submit_chat(ask("tagged"), "echo", tags=tags)
        assert refused.value.field == field


def test_a_retry_sends_the_job_its_first_try_died_before_sending(client, echo_worker, redis_url):
    key = f"order-{uuid.uuid4().hex}"
    job = chat_job(ask("sent at last"), "echo")
    meta = meta_of(idempotent_job_id(None, key), job, digest=request_digest(job))
    meta = meta.model_copy(update={"queued_at": time.time() - 60})  # a minute ago, past the send grace
    redis.Redis.from_url(redis_url).set(names.job_key(meta.job_id), meta.model_dump_json(), ex=3600)  # all it did
    handle = client.submit_chat(ask("sent at last"), "echo", idempotency_key=key)
    assert handle.id == meta.job_id
    assert handle.result(timeout=120).responses[0].response_text == "sent at last"


async def test_a_stream_cut_by_the_callers_own_timeout_cancels_its_job(client, echo_worker, latest_job_id):
    """The sync client's async methods, from the caller's own loop: the cancel reaches the step running on
    the client's loop, and the stream closes once that step has unwound."""
    stream = client.astream_chat(ask("one [hold]"), "echo")
    assert await anext(stream) == "one"
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):  # the next token never comes: the timeout always fires
            await anext(stream)
    with pytest.raises(JobCancelled) as caught:
        await asyncio.to_thread(lambda: client.find_job(latest_job_id()).result(timeout=60))
    assert caught.value.record.responses[0].response_text == "one"


def test_closing_the_client_wakes_whoever_waits_on_it(client, client_settings, echo_worker):
    closing = InferQClient(settings=client_settings)
    handle = closing.submit_chat(ask("[hold]"), "echo")
    woken = []
    waiter = threading.Thread(target=lambda: woken.append(_raised(lambda: handle.result())))
    waiter.start()
    give_up_at = time.monotonic() + 300  # only turns a hang into a failure
    while closing._client.store.hub.num_channels == 0:  # the waiter follows its job now
        assert time.monotonic() < give_up_at, "the waiter never followed its job"
        time.sleep(0.05)
    closing.close()  # from another thread than the waiter's
    waiter.join(300)
    assert not waiter.is_alive() and isinstance(woken[0], ClientClosed)
    client.find_job(handle.id).cancel()  # the job went on: another client finds it


def _raised(call):
    try:
        call()
    except Exception as error:
        return error
    return None
