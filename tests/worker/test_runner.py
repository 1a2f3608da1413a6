"""The engine runner (worker/runner.py): cancels reach the engine whatever happens to the listener."""

import pytest
import redis

from api_client import JobCancelled, JobFailed


def test_a_cancel_sent_while_the_listener_reconnects_still_reaches_the_job(start_worker, client, redis_url):
    worker = start_worker("echo", "cancel-resync", engine="echo")
    handle = client.submit_chat([{"role": "user", "content": "started [hold]"}], "cancel-resync")
    assert next(handle.stream()) == "started"
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    hub = f"inferq-worker:{worker.hostname}:hub"
    [connection] = [c["id"] for c in admin.client_list(_type="pubsub") if c["name"] == hub]
    admin.client_kill_filter(_id=connection)  # the worker's subscriber is cut off...
    handle.cancel()  # ...and the cancel is published now: live after the reconnect, or found by its mark
    with pytest.raises(JobCancelled):
        handle.result(timeout=60)
    worker.stop()


def test_an_engine_abort_that_fails_leaves_the_cancel_listener_listening(start_worker, client):
    worker = start_worker("echo", "abort-fails", engine="echo", concurrency=2)
    stubborn = client.submit_chat([{"role": "user", "content": "stubborn [abort-fails] [hold]"}], "abort-fails")
    assert next(stubborn.stream()) == "stubborn"
    stubborn.cancel()  # its engine's abort raises: logged, and the job holds on
    other = client.submit_chat([{"role": "user", "content": "other [hold]"}], "abort-fails")
    assert next(other.stream()) == "other"
    other.cancel()
    with pytest.raises(JobCancelled):
        other.result(timeout=120)  # the listener still hears cancels
    assert "cancelling job" in worker.log_tail() and "[abort-fails] directive" in worker.log_tail()
    worker.stop()  # its shutdown aborts the stubborn job again, and that abort works


def test_a_run_cancelled_inside_the_engine_goes_back_to_the_queue_and_is_never_acked_away(start_worker, client):
    # Raised out of the task, the CancelledError failed it and Celery acked it: no record, a reader waiting for ever.
    start_worker("echo", "cancelled-inside", engine="echo")
    handle = client.submit_chat([{"role": "user", "content": "x [cancelled]"}], "cancelled-inside")
    with pytest.raises(JobFailed, match="delivered 4 times"):  # each delivery counted, as a death would be
        handle.result(timeout=120)  # a bound for failure only
