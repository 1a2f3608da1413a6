"""One job from delivery to record (worker/jobs.py), through real echo workers: every path ends in
exactly one record, or in a message that goes back to the queue; a second delivery never runs twice."""

import time

import pytest

from tasks import names
from tasks.app import job_queue
from tasks.config import QueueSettings
from tasks.schemas import JobStatus
from tests.worker.conftest import chat_payload


def _send(celery_app, *args, task_id=None, model="echo", **kwargs):
    return celery_app.send_task(
        names.CHAT_TASK, args=list(args), kwargs=kwargs, task_id=task_id, queue=job_queue(QueueSettings(), model)
    )


def _wait_for(read, job_id, timeout_s=120):
    deadline = time.monotonic() + timeout_s
    while (record := read(job_id)) is None:
        assert time.monotonic() < deadline, f"no record for {job_id}"
        time.sleep(0.05)
    return record


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        (["hello"], {}, "payload"),
        ([], {}, "payload"),
        ([chat_payload("x"), "extra"], {}, "payload"),
        ([], {"job": chat_payload("x")}, "payload"),
        ([chat_payload("x", messages=[{"role": "robot", "content": "x"}])], {}, "messages.0.role"),
        ([chat_payload("x", params={"temperature": -2})], {}, "params.temperature"),
        ([chat_payload("x", params={"temprature": 0.5})], {}, "params.temprature"),
        ([chat_payload("x", params={"n": 100})], {}, "params.n"),
        ([chat_payload("x", surprise=True)], {}, "surprise"),
        ([{"model": "echo", "queued_at": 1}], {}, "messages"),
        ([chat_payload("x" * 5_000_000)], {}, "payload"),
    ],
)
def test_raw_payloads_past_the_client_get_field_named_records(
    celery_app, echo_worker, record_of, client, args, kwargs, field
):
    result = _send(celery_app, *args, **kwargs)
    record = _wait_for(record_of, result.id)
    assert (record.status, record.error.type, record.error.field) == (JobStatus.FAILED, "InvalidRequest", field)
    assert client.chat([{"role": "user", "content": "still serving"}], "echo")[0].response_text == "still serving"


@pytest.mark.redis_broker
def test_garbage_on_a_queue_list_is_dropped_and_the_worker_keeps_serving(observer, echo_worker, client):
    queue = names.queue_for_model("echo")
    for garbage in ("not json at all", '{"hello": 1}', "[1, 2]", '{"properties": {}, "body": "x"}'):
        observer.lpush(queue, garbage)
    assert client.chat([{"role": "user", "content": "still here"}], "echo")[0].response_text == "still here"
    assert echo_worker.process.poll() is None
    assert echo_worker.log_tail(400).count("dropped a malformed message") >= 4


@pytest.mark.amqp_broker
def test_garbage_on_a_rabbitmq_queue_is_dropped_and_the_worker_keeps_serving(celery_app, echo_worker, client):
    queue = job_queue(QueueSettings(), "echo")
    garbage = [
        (b"not json at all", "application/json"),
        (b'{"hello": 1}', "application/json"),  # JSON, but no task in its headers
        (b"\x80\x04K\x01.", "application/x-python-serialize"),  # pickle: refused, never loaded
    ]
    with celery_app.connection_for_write() as connection:
        producer = connection.Producer()
        for body, content_type in garbage:
            producer.publish(body, exchange=queue.exchange, routing_key=queue.routing_key, content_type=content_type,
                             content_encoding="binary", declare=[queue])  # fmt: skip
    assert client.chat([{"role": "user", "content": "still here"}], "echo")[0].response_text == "still here"
    assert echo_worker.process.poll() is None
    assert [info.depth for info in client.queues() if info.model == "echo"] == [0]  # nothing left behind


def test_a_duplicate_delivered_while_the_job_runs_waits_and_never_runs_it(
    celery_app, echo_worker, record_of, observer, release
):
    wait, let_go = release()
    job_id = "duplicate-while-running"
    _send(celery_app, chat_payload(f"one {wait} two"), task_id=job_id)
    while observer.xlen(names.events_key(job_id)) == 0:  # the first copy has started streaming
        time.sleep(0.02)
    _send(celery_app, chat_payload(f"one {wait} two"), task_id=job_id)  # the same job, delivered again
    while _received(echo_worker, job_id).count("] received") < 2:  # the duplicate is in a worker's hands
        time.sleep(0.02)
    let_go()
    record = _wait_for(record_of, job_id)
    assert (record.status, record.attempt) == (JobStatus.SUCCEEDED, 1)
    _settled(echo_worker, job_id, finishes=1, receipts=2)
    assert observer.get(names.deliveries_key(job_id)) == "1"
    finals = [entry for _, entry in observer.xrange(names.events_key(job_id)) if '"type":"final"' in entry["e"]]
    assert len(finals) == 1


def test_a_duplicate_waiting_on_another_workers_lease_lets_its_own_worker_shut_down(
    celery_app, start_worker, record_of, observer, release
):
    # Nothing handed the waiting delivery back: its worker's warm shutdown waited out the grace and the hand-back's
    # patience, and ended in the forced exit (70) with the message left for the reaper.
    wait, let_go = release()
    job_id, model = "duplicate-across-workers", "dup-echo"
    first = start_worker("echo", model, engine="echo", concurrency=1)
    _send(celery_app, chat_payload(f"one {wait} two", model=model), task_id=job_id, model=model)
    while observer.xlen(names.events_key(job_id)) == 0:  # running on the first worker, its one slot taken
        time.sleep(0.02)
    second = start_worker("echo", model, engine="echo", concurrency=1)
    _send(celery_app, chat_payload(f"one {wait} two", model=model), task_id=job_id, model=model)  # a duplicate
    while "] received" not in _received(second, job_id):  # in the second worker's hands, waiting on the lease
        time.sleep(0.02)
    assert second.stop() == 0, second.log_tail()
    assert "waited on another delivery's lease" in _received(second, job_id)
    let_go()
    record = _wait_for(record_of, job_id)
    assert (record.status, record.attempt) == (JobStatus.SUCCEEDED, 1)  # run once, by the first
    first.stop()


def test_a_duplicate_delivered_after_the_job_finished_is_let_go(celery_app, echo_worker, record_of, observer):
    job_id = "duplicate-after-the-end"
    _send(celery_app, chat_payload("once"), task_id=job_id)
    _wait_for(record_of, job_id)
    _send(celery_app, chat_payload("once"), task_id=job_id)
    _settled(echo_worker, job_id, finishes=1, receipts=2)
    assert observer.get(names.deliveries_key(job_id)) == "1"


def test_a_cancel_marked_before_the_job_starts_is_honoured(celery_app, echo_worker, record_of, observer):
    job_id = "cancelled-before-start"
    observer.set(names.cancel_key(job_id), "1")  # as a client's cancel would, just before delivery
    _send(celery_app, chat_payload("never runs"), task_id=job_id)
    record = _wait_for(record_of, job_id)
    assert (record.status, record.error.message) == (JobStatus.CANCELLED, "cancelled before it started")


def _received(worker, job_id: str) -> str:
    return "\n".join(line for line in worker.log_tail(2000).splitlines() if job_id in line)


def _settled(worker, job_id: str, finishes: int, receipts: int, timeout_s: float = 120) -> None:
    """Waits until the worker log shows every delivery of the job dealt with, then checks how."""
    deadline = time.monotonic() + timeout_s
    while True:
        lines = _received(worker, job_id)
        dealt = lines.count("succeeded in") + lines.count("raised") + lines.count("ignored") + lines.count("Ignore")
        if lines.count("] received") >= receipts and dealt >= receipts:
            break
        assert time.monotonic() < deadline, lines
        time.sleep(0.05)
    assert lines.count(f"job {job_id} finished") == finishes, lines
