"""The engine runner (worker/runner.py): cancels reach the engine whatever happens to the listener."""

import pytest
import redis

from api_client import JobCancelled


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
