"""Workers as separate processes (worker/app.py): routing, announcing, priorities, shutdown, refusals."""

import os
import signal
import subprocess
import sys

import pytest
import redis

from api_client import InferQClient, InvalidRequest, JobRestarted
from harness.worker_process import WorkerProcess
from tasks import names
from tasks.app import DEFAULT_PRIORITY

ASK = [{"role": "user", "content": "hello"}]
SAY_PRIORITY = [{"role": "user", "content": "[priority]"}]


def test_jobs_reach_only_workers_of_their_model(client, echo_worker, echo_scorer_worker):
    chat = client.submit_chat(ASK, "echo").result(timeout=60)
    score = client.submit_score(["text"], "echo-rm").result(timeout=60)
    assert (chat.worker, score.worker) == (echo_worker.hostname, echo_scorer_worker.hostname)
    with pytest.raises(InvalidRequest, match="use get_scores"):
        client.chat(ASK, "echo-rm")
    with pytest.raises(InvalidRequest, match="use chat"):
        client.get_scores(["text"], "echo")


def test_live_workers_announce_themselves(client, echo_worker, echo_scorer_worker):
    workers = {info.hostname: info for info in client.workers()}
    assert workers[echo_worker.hostname].model == "echo" and workers[echo_worker.hostname].can_generate
    assert workers[echo_scorer_worker.hostname].model == "echo-rm"
    assert not workers[echo_scorer_worker.hostname].can_generate


def test_sigterm_finishes_running_jobs_and_leaves_queued_ones_queued(start_worker, client, release):
    wait, let_go = release()
    # A grace far longer than the job: this test is about the jobs that finish within it.
    worker = start_worker("echo", "graceful", engine="echo", concurrency=1, env={"INFERQ_SHUTDOWN_GRACE_S": "600"})
    running = client.submit_chat([{"role": "user", "content": f"started {wait} finished"}], "graceful")
    stream = running.stream()
    assert next(stream) == "started"
    queued = client.submit_chat(ASK, "graceful")  # waits for the one slot
    worker.process.send_signal(signal.SIGTERM)
    let_go()
    assert worker.process.wait(timeout=120) == 0
    assert running.result(timeout=60).responses[0].response_text == f"started {wait} finished"
    assert queued.record() is None  # not lost, not run: still queued for the next worker of this model
    successor = start_worker("echo", "graceful", engine="echo")
    assert queued.result(timeout=60).worker == successor.hostname
    successor.stop()


def test_a_job_still_running_when_the_shutdown_grace_runs_out_goes_back_to_the_queue(start_worker, client, release):
    wait, let_go = release()
    # one death allowed: a delivery handed back whole is not one, so the successor still runs the job
    strict = {"INFERQ_MAX_DELIVERIES": "1"}
    worker = start_worker("echo", "impatient", engine="echo", concurrency=1,
                          env={"INFERQ_SHUTDOWN_GRACE_S": "1", **strict})  # fmt: skip
    held = client.submit_chat([{"role": "user", "content": f"started {wait} finished"}], "impatient")
    stream = held.stream()
    assert next(stream) == "started"  # it cannot finish before the test lets it go: SIGTERM cannot wait it out
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=120) == 0
    assert held.record() is None  # stopped, not recorded: its message went back to the queue
    assert "goes back to the queue" in worker.log_tail()
    successor = start_worker("echo", "impatient", engine="echo", concurrency=1, env=strict)
    let_go()
    with pytest.raises(JobRestarted):
        list(stream)  # what it streamed belongs to the stopped attempt
    record = held.result(timeout=60)
    assert (record.worker, record.attempt) == (successor.hostname, 2)
    assert record.responses[0].response_text == f"started {wait} finished"
    successor.stop()


@pytest.mark.redis_broker
def test_a_job_handed_back_goes_to_the_head_of_its_queue(start_worker, client, release):
    wait, let_go = release()
    worker = start_worker("echo", "head-first", engine="echo", concurrency=1, env={"INFERQ_SHUTDOWN_GRACE_S": "1"})
    held = client.submit_chat([{"role": "user", "content": f"started {wait}"}], "head-first")
    assert next(held.stream()) == "started"
    queued = client.submit_chat([{"role": "user", "content": "queued behind it"}], "head-first")
    worker.process.send_signal(signal.SIGTERM)  # its grace runs out: the held job goes back to the queue
    assert worker.process.wait(timeout=120) == 0
    let_go()
    successor = start_worker("echo", "head-first", engine="echo", concurrency=1)  # one job at a time, in order
    handed_back, after = held.result(timeout=120), queued.result(timeout=120)
    assert handed_back.timings.started_at < after.timings.started_at  # it was first in line, not last
    successor.stop()


def test_priority_zero_jumps_the_queue(start_worker, client_settings, release):
    # On RabbitMQ, quorum queues honour priorities from 4.0 on; the server here is 3.10, so this model's
    # queue is a classic one (x-max-priority), for producer and worker alike. Redis ignores the setting.
    classic = {"INFERQ_AMQP_QUEUE_TYPE": "classic"}
    wait, let_go = release()
    worker = start_worker("echo", "prioritised", engine="echo", concurrency=1, env=classic)
    with InferQClient(settings=client_settings.model_copy(update={"amqp_queue_type": "classic"})) as client:
        busy = client.submit_chat([{"role": "user", "content": f"busy {wait}"}], "prioritised")
        assert next(busy.stream()) == "busy"  # the one slot is taken; what follows waits in the queue
        low = client.submit_chat(SAY_PRIORITY, "prioritised", priority=9)
        high = client.submit_chat(SAY_PRIORITY, "prioritised", priority=0)
        let_go()
        low_record, high_record = low.result(timeout=60), high.result(timeout=60)
        assert high_record.timings.started_at < low_record.timings.started_at
        # and the engine was told each job's priority (read off the message, whichever the broker)
        assert [r.responses[0].response_text for r in (low_record, high_record)] == ["priority=9", "priority=0"]
        unset = client.submit_chat(SAY_PRIORITY, "prioritised").result(timeout=60)
        assert unset.responses[0].response_text == f"priority={DEFAULT_PRIORITY}"
    worker.stop()


def test_the_prefork_pool_is_refused(redis_url):
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "--pool", "prefork", "--engine", "echo"],
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
        (["--redis-url", "http://user:hunter2@localhost"], "redis_url"),
    ],
)
def test_bad_worker_settings_fail_fast_and_name_the_setting(flags, complaint, tmp_path):
    # a model that is not there: a worker that loaded its model before checking its settings would fail on that
    missing_model = ["--model", str(tmp_path / "no-such-model")]
    command = [sys.executable, "-m", "cli.main", "worker", *flags, *missing_model]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert complaint in result.stderr and "hunter2" not in result.stderr
    assert "no-such-model" not in result.stderr


def test_a_second_live_worker_with_the_same_node_name_is_refused(redis_url, echo_worker, worker_logs):
    twin = WorkerProcess(redis_url, "echo", "echo", worker_logs, engine="echo", hostname=echo_worker.hostname)
    twin.process = subprocess.Popen(twin.command, env=twin.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output, _ = twin.process.communicate(timeout=120)
    assert twin.process.returncode != 0
    assert b"already uses the node name" in output
    assert echo_worker.process.poll() is None  # the first one serves on
    # and is still in the registry: the twin, refused before it announced itself, retired nothing
    assert redis.Redis.from_url(redis_url).exists(names.worker_key(echo_worker.hostname))
