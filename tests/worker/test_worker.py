"""Workers as separate processes: payload checks, routing, crashes, shutdown, duplicate deliveries."""

import os
import signal
import subprocess
import sys
import time

import pytest
import redis

from api_client import InvalidRequest, JobFailed, JobRestarted
from tasks import make_app, names
from tasks.config import QueueSettings
from tasks.schemas import JobRecord

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = {"temperature": 0}


@pytest.fixture(scope="module")
def celery_app(redis_url):
    app = make_app(QueueSettings(redis_url=redis_url))
    yield app
    app.close()


def _raw_job(**overrides):
    return {
        "model": "tiny",
        "queued_at": time.time(),
        "messages": QUESTION,
        "params": {"max_new_tokens": 4},
        **overrides,
    }


def _record(redis_url, job_id) -> JobRecord:
    raw = redis.Redis.from_url(redis_url).get(names.record_key(job_id))
    return JobRecord.model_validate_json(raw)


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        (["hello"], {}, "payload"),
        ([], {}, "payload"),
        ([_raw_job(), "extra"], {}, "payload"),
        ([], {"job": _raw_job()}, "payload"),
        ([_raw_job(messages=[{"role": "robot", "content": "x"}])], {}, "messages.0.role"),
        ([_raw_job(params={"temperature": -2})], {}, "params.temperature"),
        ([_raw_job(params={"temprature": 0.5})], {}, "params.temprature"),
        ([_raw_job(surprise=True)], {}, "surprise"),
        ([{"model": "tiny", "queued_at": 1}], {}, "messages"),
    ],
)
def test_raw_payloads_past_the_client_get_field_named_errors(
    celery_app, client, tiny_worker, redis_url, args, kwargs, field
):
    result = celery_app.send_task(names.CHAT_TASK, args=args, kwargs=kwargs, queue=names.queue_for_model("tiny"))
    with pytest.raises(InvalidRequest):
        result.get(timeout=30)  # Celery's own view: the task failed with inferq's error class
    record = _record(redis_url, result.id)
    assert (record.status, record.error.type, record.error.field) == ("failed", "InvalidRequest", field)
    # and the worker keeps serving
    assert client.chat(QUESTION, "tiny", max_new_tokens=3)[0].response_length == 3


def test_jobs_reach_only_workers_of_their_model(client, tiny_worker, tiny_scorer_worker):
    chat = client.submit_chat(QUESTION, "tiny", max_new_tokens=3).result(timeout=60)
    score = client.submit_score(["text"], "tiny-rm").result(timeout=60)
    assert chat.worker == tiny_worker.hostname
    assert score.worker == tiny_scorer_worker.hostname
    with pytest.raises(InvalidRequest, match="use get_scores"):
        client.chat(QUESTION, "tiny-rm")
    with pytest.raises(InvalidRequest, match="use chat"):
        client.get_scores(["text"], "tiny")


def test_live_workers_announce_themselves(client, tiny_worker, tiny_scorer_worker):
    workers = {info.hostname: info for info in client.workers()}
    assert workers[tiny_worker.hostname].model == "tiny" and workers[tiny_worker.hostname].can_generate
    assert workers[tiny_scorer_worker.hostname].model == "tiny-rm"
    assert not workers[tiny_scorer_worker.hostname].can_generate


def test_a_second_delivery_of_a_job_does_not_run_it_again(celery_app, tiny_worker, redis_url):
    job_id = "duplicate-delivery"
    first = celery_app.send_task(
        names.CHAT_TASK, args=[_raw_job()], task_id=job_id, queue=names.queue_for_model("tiny")
    )
    first.get(timeout=30)
    celery_app.send_task(names.CHAT_TASK, args=[_raw_job()], task_id=job_id, queue=names.queue_for_model("tiny"))
    time.sleep(2)
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    assert connection.get(names.deliveries_key(job_id)) == "1"
    finals = [f for _, f in connection.xrange(names.events_key(job_id)) if '"type":"final"' in f["e"]]
    assert len(finals) == 1
    assert _record(redis_url, job_id).attempt == 1


def test_a_killed_workers_job_is_finished_by_another_worker(start_worker, tiny_llama_dir, client):
    first = start_worker(tiny_llama_dir, "crashy")
    handle = client.submit_chat(QUESTION, "crashy", max_new_tokens=3000, **GREEDY)
    stream = handle.stream()
    assert next(stream)  # the job runs on the first worker
    first.kill()  # SIGKILL: no cleanup, the job stays unacked in Redis
    second = start_worker(tiny_llama_dir, "crashy")
    with pytest.raises(JobRestarted):
        for _ in stream:
            pass
    record = handle.result(timeout=120)
    assert (record.attempt, record.worker) == (2, second.hostname)
    assert "".join(handle.stream()) == record.responses[0].response_text  # a new reader sees attempt 2 only
    second.stop()


def test_a_job_that_keeps_killing_workers_fails_with_a_clear_record(start_worker, tiny_llama_dir, client):
    first = start_worker(tiny_llama_dir, "doomed", env={"INFERQ_MAX_DELIVERIES": "1"})
    handle = client.submit_chat(QUESTION, "doomed", max_new_tokens=3000)
    next(handle.stream())
    first.kill()
    second = start_worker(tiny_llama_dir, "doomed", env={"INFERQ_MAX_DELIVERIES": "1"})
    with pytest.raises(JobFailed, match="delivered 2 times") as caught:
        handle.result(timeout=120)
    assert caught.value.record.attempt == 2
    second.stop()


def test_sigterm_finishes_running_jobs_and_leaves_queued_ones_queued(start_worker, tiny_llama_dir, client):
    worker = start_worker(tiny_llama_dir, "graceful", concurrency=1)
    running = client.submit_chat(QUESTION, "graceful", max_new_tokens=300, **GREEDY)
    next(running.stream())
    queued = client.submit_chat(QUESTION, "graceful", max_new_tokens=5, **GREEDY)  # waits for the one slot
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=120) == 0
    record = running.result(timeout=5)
    assert record.status == "succeeded" and record.responses[0].response_length == 300
    assert queued.record() is None  # not lost, not run: still queued for the next worker of this model
    successor = start_worker(tiny_llama_dir, "graceful")
    assert queued.result(timeout=60).worker == successor.hostname
    successor.stop()


def test_the_prefork_pool_is_refused(redis_url, tiny_llama_dir):
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "--pool", "prefork", "--model", tiny_llama_dir],
        env={**os.environ, "INFERQ_REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "--pool threads" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("flags", "complaint"),
    [
        (["--engine", "tensorrt"], "engine"),
        (["--gpus", "zero"], "gpus"),
        (["--concurrency", "0"], "concurrency"),
        (["--name", "has space"], "name"),
        (["--redis-url", "http://localhost"], "redis_url"),
    ],
)
def test_bad_worker_settings_fail_fast_and_name_the_setting(flags, complaint):
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "worker.main", "worker", *flags], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert complaint in result.stderr
    assert time.monotonic() - started < 30  # long before any model could load


def test_priority_zero_jumps_the_queue(start_worker, tiny_llama_dir, client):
    worker = start_worker(tiny_llama_dir, "prioritised", concurrency=1)
    busy = client.submit_chat(QUESTION, "prioritised", max_new_tokens=200, **GREEDY)
    next(busy.stream())  # the one slot is taken; what follows waits in Redis
    low = client.submit_chat(QUESTION, "prioritised", max_new_tokens=2, priority=9)
    high = client.submit_chat(QUESTION, "prioritised", max_new_tokens=2, priority=0)
    low_started = low.result(timeout=60).timings.started_at
    high_started = high.result(timeout=60).timings.started_at
    assert high_started < low_started
    worker.stop()
