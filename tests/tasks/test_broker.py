"""inferq's kombu Redis transport (tasks/broker.py), on the session's real Redis, with kombu's own objects."""

import uuid

import pytest
import redis
from kombu import Connection

# Redis as the broker, whatever broker the session's workers use.
pytestmark = pytest.mark.any_broker


def test_a_channel_closed_after_its_connection_let_go_keeps_its_unacked_messages(isolated_url):
    queue = f"broker-test-{uuid.uuid4().hex}"
    with Connection(isolated_url, transport="tasks.broker:Transport") as connection:
        channel = connection.channel()
        connection.SimpleQueue(queue, channel=channel).put({"job": 1})
        message = channel.basic_get(queue, no_ack=False)
        assert message is not None  # delivered, not acked: in the unacked hash
        # What kombu does before Celery's consumer closes a dropped connection's channel: the transport forgets
        # its connection (and with it the URL) first. Closing must not raise, which would stop the worker.
        transport = channel.connection
        transport.client = None
        channel.close()
        transport.client = connection  # so that the connection itself closes cleanly
    unacked = redis.Redis.from_url(isolated_url).hlen("unacked")
    assert unacked >= 1  # left for the reaper, not lost
