"""inferq's kombu Redis transport (tasks/broker.py), on the session's real Redis, with kombu's own objects."""

import uuid

import pytest
import redis
from kombu import Connection

from tasks.broker import riding_with_the_message

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


def _queue_name():
    return f"broker-test-{uuid.uuid4().hex}"


def test_a_message_is_in_the_unacked_hash_the_moment_it_leaves_its_queue(isolated_url, isolated_redis):
    # kombu popped first and recorded in a second round trip: a worker killed in between lost the message.
    queue = _queue_name()
    seen = []

    def on_message(body, message):
        tag = message.delivery_tag
        seen.append((body, isolated_redis.hexists("unacked", tag), isolated_redis.zscore("unacked_index", tag)))
        message.ack()

    with Connection(isolated_url, transport="tasks.broker:Transport") as connection:
        connection.SimpleQueue(queue).put({"job": 1})
        with connection.Consumer(connection.SimpleQueue(queue).queue, callbacks=[on_message]):
            connection.drain_events(timeout=30)
    [(body, in_hash, popped_at)] = seen
    assert body == {"job": 1} and in_hash and popped_at is not None
    assert not isolated_redis.exists(f"_inferq.bell.{queue}")  # its bell went with it


def test_what_a_producer_without_bells_pushed_is_found_within_a_poll(isolated_url, isolated_redis):
    queue = _queue_name()
    bodies = []
    with Connection(isolated_url) as plain:  # kombu's own transport: pushes no bell
        plain.SimpleQueue(queue).put({"job": "plain"})
    with Connection(isolated_url, transport="tasks.broker:Transport") as connection:
        consumer_queue = connection.SimpleQueue(queue).queue
        with connection.Consumer(
            consumer_queue, callbacks=[lambda body, message: (bodies.append(body), message.ack())]
        ):
            connection.drain_events(timeout=30)
    assert bodies == [{"job": "plain"}]


def test_a_no_ack_consumer_leaves_nothing_in_the_unacked_hash(isolated_url, isolated_redis):
    queue = _queue_name()
    tags = []
    with Connection(isolated_url, transport="tasks.broker:Transport") as connection:
        connection.SimpleQueue(queue).put({"job": 2})
        consumer_queue = connection.SimpleQueue(queue).queue
        with connection.Consumer(
            consumer_queue, no_ack=True, callbacks=[lambda body, message: tags.append(message.delivery_tag)]
        ):
            connection.drain_events(timeout=30)
    [tag] = tags
    assert not isolated_redis.hexists("unacked", tag)


def test_bells_of_an_emptied_queue_are_dropped(isolated_url, isolated_redis):
    queue = _queue_name()
    with Connection(isolated_url, transport="tasks.broker:Transport") as connection:
        connection.SimpleQueue(queue).put({"job": 3})
        isolated_redis.delete(queue)  # a purge: the message is gone, its bell stays
        assert isolated_redis.llen(f"_inferq.bell.{queue}") == 1
        consumer_queue = connection.SimpleQueue(queue).queue
        with connection.Consumer(consumer_queue, callbacks=[lambda body, message: message.ack()]):
            with pytest.raises(TimeoutError):
                connection.drain_events(timeout=2)
    assert not isolated_redis.exists(f"_inferq.bell.{queue}")


def test_garbage_on_the_list_does_not_use_up_the_bell_of_the_message_behind_it(isolated_url, isolated_redis):
    queue = _queue_name()
    bodies = []
    # A poll that is not rung waits an hour: the message must be found on its own bell's wake-up.
    options = {"brpop_timeout": 3600}
    with Connection(isolated_url, transport="tasks.broker:Transport", transport_options=options) as connection:
        isolated_redis.lpush(queue, "\x00not json", '{"json": "but not a message"}')  # no bell, popped first
        connection.SimpleQueue(queue).put({"job": "behind the garbage"})  # one message, one bell
        consumer_queue = connection.SimpleQueue(queue).queue
        with connection.Consumer(
            consumer_queue, callbacks=[lambda body, message: (bodies.append(body), message.ack())]
        ):
            connection.drain_events(timeout=60)  # only a bound: the one bell finds the message at once
    assert bodies == [{"job": "behind the garbage"}]
    assert isolated_redis.llen(queue) == 0


def test_a_message_found_without_a_bell_rings_for_the_rest(isolated_url, isolated_redis):
    queue = _queue_name()
    bodies = []
    with Connection(isolated_url) as plain:  # kombu's own transport: pushes no bell
        for job in range(3):
            plain.SimpleQueue(queue).put({"job": job})
    with Connection(isolated_url, transport="tasks.broker:Transport") as connection:
        consumer_queue = connection.SimpleQueue(queue).queue
        with connection.Consumer(
            consumer_queue, callbacks=[lambda body, message: (bodies.append(body), message.ack())]
        ):
            connection.drain_events(timeout=30)  # the first is found when the unrung poll times out
            assert bodies == [{"job": 0}]
            assert isolated_redis.llen(f"_inferq.bell.{queue}") == 1  # and rings for the next poll
            connection.drain_events(timeout=30)
            connection.drain_events(timeout=30)
    assert bodies == [{"job": job} for job in range(3)]


def test_commands_riding_with_a_message_are_written_in_its_push_ahead_of_it(isolated_url, isolated_redis):
    # A job's meta rides in the push of its message (tasks/broker.py): there when the message can be popped.
    queue, key = _queue_name(), f"rider-{uuid.uuid4().hex}"
    seen = []
    with Connection(isolated_url, transport="tasks.broker:Transport") as connection:
        with riding_with_the_message([("set", (key, "meta"), {"ex": 60})]) as riders:
            connection.SimpleQueue(queue).put({"job": 1})
        consumer_queue = connection.SimpleQueue(queue).queue
        with connection.Consumer(
            consumer_queue, callbacks=[lambda body, message: (seen.append(isolated_redis.get(key)), message.ack())]
        ):
            connection.drain_events(timeout=30)
        connection.SimpleQueue(queue).put({"job": 2})  # outside the block: nothing rides
    assert riders.carried and seen == [b"meta"]
    assert 0 < isolated_redis.ttl(key) <= 60


def test_kombus_own_transport_carries_no_riders(isolated_url, isolated_redis):
    # The caller learns that it must write them itself (the client's meta on a broker that is not this one).
    key = f"rider-{uuid.uuid4().hex}"
    with Connection(isolated_url) as plain:
        with riding_with_the_message([("set", (key, "meta"), {})]) as riders:
            plain.SimpleQueue(_queue_name()).put({"job": 1})
    assert not riders.carried and not isolated_redis.exists(key)
