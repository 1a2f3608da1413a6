"""kombu's Redis transport, made to survive garbage on a queue list and a Redis that refuses writes.

- kombu decodes a popped message before Celery's error handling sees it (celery#7975): one non-JSON
  string pushed onto a queue list raises JSONDecodeError out of `_brpop_read`, and the worker stops
  with "Unrecoverable error". Here a message that cannot be decoded, or is JSON but not a kombu
  envelope, is dropped with a log line (it was already popped, so nothing else holds it).
- kombu pops a message (BRPOP) before it records it as unacked (HSET + ZADD). When Redis refuses that
  write (maxmemory reached under noeviction), kombu raises and the popped message is gone for good.
  Here the write is retried until Redis takes writes again: the message is never lost in between. So is the
  write that gives a message back to its queue, which kombu would otherwise raise out of Celery's loop.
- When the broker connection drops, Celery's consumer closes the connection, and closing its channel puts
  the channel's unacked messages back on their queues; but the channel can be closed after its connection
  has already let go of its URL, and kombu then raises AttributeError ('NoneType' object has no attribute
  'hostname'), which Celery takes for an unrecoverable error: the worker stops (seen when Redis restarts).
  Here that restore is skipped instead: the messages stay in the unacked hash, their jobs still run here and
  record, and the reaper gives back whatever is left after one lease lifetime (a finished job's copy is then
  let go as done), so nothing is lost or run twice and the worker reconnects and goes on.
"""

from __future__ import annotations

import logging
import time

from kombu.transport import redis as kombu_redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# What decoding a stranger's bytes can raise: not JSON (ValueError), JSON of the wrong shape (the rest).
MALFORMED = (ValueError, TypeError, KeyError, AttributeError, IndexError)


# How long a popped message waits for Redis to take writes again before the worker gives up on it.
UNACKED_WRITE_PATIENCE_S = 600.0


def _until_redis_takes_writes(write, what: str):
    give_up_at = time.monotonic() + UNACKED_WRITE_PATIENCE_S
    delay_s = 0.1
    while True:
        try:
            return write()
        except RedisError as error:
            if time.monotonic() + delay_s > give_up_at:
                raise
            log.warning("Redis refused to %s (%s); retrying", what, error)
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, 2.0)


class QoS(kombu_redis.QoS):
    def append(self, message, delivery_tag):
        return _until_redis_takes_writes(
            lambda: super(QoS, self).append(message, delivery_tag), "record a popped message as unacked"
        )

    def restore_by_tag(self, tag, client=None, leftmost=False):
        # A message given back (a job handed back to the queue) while Redis refuses writes: kombu raises, and
        # Celery takes that for an unrecoverable error and stops the worker (seen in the maxmemory fault test).
        return _until_redis_takes_writes(
            lambda: super(QoS, self).restore_by_tag(tag, client=client, leftmost=leftmost),
            "put a message back on its queue",
        )

    def restore_unacked(self, client=None):
        if client is None and getattr(self.channel.connection, "client", None) is None:
            log.warning(
                "the broker connection is gone: %d unacked message(s) stay for the reaper", len(self._delivered)
            )
            self._delivered.clear()
            return None
        return super().restore_unacked(client)


class _Hardened:
    """What both channels (one Redis, Redis behind Sentinel) add to kombu's."""

    QoS = QoS

    def _brpop_read(self, **options):
        try:
            return super()._brpop_read(**options)
        except MALFORMED as error:  # before kombu's connection errors, which count KeyError among them
            log.error("dropped a malformed message from a queue list (%s: %s)", type(error).__name__, error)
            return True  # something was read; the poller goes on


class Channel(_Hardened, kombu_redis.Channel):
    pass


class SentinelChannel(_Hardened, kombu_redis.SentinelChannel):
    pass


class Transport(kombu_redis.Transport):
    Channel = Channel


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel


TRANSPORT = f"{__name__}:Transport"
SENTINEL_TRANSPORT = f"{__name__}:SentinelTransport"
