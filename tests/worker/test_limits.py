"""Backpressure and time limits: a queue at its cap refuses jobs; a job that runs too long is stopped
and keeps its text; so does one whose deadline passes while it runs."""

import pytest

from api_client import JobExpired, JobFailed, JobTimeLimit, QueueFull
from tasks.schemas import JobStatus
from tests.waiting import GROWING_LIMITS_S, streamed_text


def ask(text):
    return [{"role": "user", "content": text}]


def test_a_queue_at_its_cap_refuses_new_jobs_with_queue_full(start_worker, client):
    worker = start_worker("echo", "capped", engine="echo", concurrency=1, env={"INFERQ_MAX_QUEUED": "2"})
    busy = client.submit_chat(ask("busy [hold]"), "capped")
    assert next(busy.stream()) == "busy"  # the one slot is taken: what follows waits in the queue
    key = "a-retried-submit"
    waiting = [client.submit_chat(ask("waiting 0"), "capped", idempotency_key=key)]
    waiting.append(client.submit_chat(ask("waiting 1"), "capped"))
    with pytest.raises(QueueFull) as caught:
        client.submit_chat(ask("one too many"), "capped")
    assert caught.value.field == "model" and "'capped'" in str(caught.value) and "cap is 2" in str(caught.value)
    # a producer's retry of a job already queued is that job, not one too many
    assert client.submit_chat(ask("waiting 0"), "capped", idempotency_key=key).id == waiting[0].id
    busy.cancel()
    assert [handle.result(timeout=60).status for handle in waiting] == [JobStatus.SUCCEEDED] * 2
    worker.stop()


def test_a_job_that_runs_longer_than_its_limit_is_stopped_and_keeps_its_text(client, echo_worker):
    # the words before the hold stream within ms of the start; a worker stalled longer by a loaded machine
    # streamed nothing, and the run is tried again with a longer limit
    for limit in GROWING_LIMITS_S:
        handle = client.submit_chat(ask("so far [hold] never"), "echo", max_runtime_s=limit)
        with pytest.raises(JobTimeLimit, match="max_runtime_s") as caught:
            handle.result(timeout=limit + 60)
        if streamed_text(caught.value.record):
            break
    record = caught.value.record
    assert record.status == JobStatus.TIMED_OUT
    assert (record.responses[0].response_text, record.responses[0].finish_reason) == ("so far", "abort")


def test_the_workers_runtime_limit_applies_to_jobs_without_one_and_caps_those_asking_more(start_worker, client):
    worker = start_worker("echo", "limited", engine="echo", env={"INFERQ_MAX_RUNTIME_S": "0.5"})
    with pytest.raises(JobTimeLimit):
        client.submit_chat(ask("x [hold]"), "limited").result(timeout=60)
    with pytest.raises(JobTimeLimit, match=r"max_runtime_s \(0.5 s\)"):  # the operator's, not the job's day
        client.submit_chat(ask("x [hold]"), "limited", max_runtime_s=86400).result(timeout=60)
    worker.stop()


def test_a_deadline_passing_while_the_job_runs_keeps_its_text(client, echo_worker):
    # a job that expired in the queue (a loaded machine can hold it there for seconds) proves nothing here, and
    # is tried again with a later deadline
    for deadline in GROWING_LIMITS_S:
        handle = client.submit_chat(ask("partial [hold]"), "echo", deadline_s=deadline)
        with pytest.raises(JobExpired) as caught:
            handle.result(timeout=deadline + 60)
        if streamed_text(caught.value.record):
            break
    assert "while the job ran" in str(caught.value)
    assert caught.value.record.responses[0].response_text == "partial"


@pytest.mark.parametrize("limits", [{}, {"max_runtime_s": 600}, {"deadline_s": 600}])
def test_a_timeout_inside_the_engine_is_a_failure_not_the_jobs_limit(client, echo_worker, limits):
    handle = client.submit_chat(ask("so far [timeout]"), "echo", **limits)
    with pytest.raises(JobFailed, match="TimeoutError: echo") as caught:
        handle.result(timeout=60)
    assert caught.value.record.status == JobStatus.FAILED
