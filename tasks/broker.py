"""kombu's Redis transport, made to survive garbage on a queue list and a Redis that refuses writes.

- kombu decodes a popped message before Celery's error handling sees it (celery#7975): one non-JSON
  string pushed onto a queue list raises JSONDecodeError out of `_brpop_read`, and the worker stops
  with "Unrecoverable error". Here a message that cannot be decoded, or is JSON but not a kombu
  envelope, is dropped with a log line (it was already popped, so nothing else holds it).
- kombu pops a message (BRPOP) and then records it as unacked (HSET + ZADD) in a second round trip: a
  worker SIGKILLed in between loses the message (seen under load in the SIGKILL fault test), and so does a
  Redis that refuses the write (maxmemory under noeviction). Here one Lua script pops and records at once,
  so a message is always in Redis: in its queue list or in the unacked hash. A script cannot block, so the
  worker blocks instead on the queue's *bell*, a list a producer pushes one "1" onto after each message
  (in the same round trip); a bell carries nothing, and losing one loses nothing: the worker also runs the
  script whenever its BRPOP on the bells times out (every second), which finds what a producer that rings
  no bell (plain kombu) pushed, and then rings for it, so the rest of what it pushed is taken at once, not
  one message a timeout; garbage popped is dropped and the script runs again, so it never uses up a real
  message's bell. The script drops the bells of queues it finds empty, so they never pile up. Cost: the
  same round trips as kombu's (producer one, worker two). A Redis at maxmemory still runs
  the script whole (a script that has written may finish). The write that gives a message back to its
  queue is retried until Redis takes writes again, which kombu would otherwise raise out of Celery's loop.
- When the broker connection drops, Celery's consumer closes the connection, and closing its channel puts
  the channel's unacked messages back on their queues; but the channel can be closed after its connection
  has already let go of its URL, and kombu then raises AttributeError ('NoneType' object has no attribute
  'hostname'), which Celery takes for an unrecoverable error: the worker stops (seen when Redis restarts).
  Here that restore is skipped instead: the messages stay in the unacked hash, their jobs still run here and
  record, and the reaper gives back whatever is left after one lease lifetime (a finished job's copy is then
  let go as done), so nothing is lost or run twice and the worker reconnects and goes on.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from queue import Empty

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads
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


# Pops the first message of KEYS[1..n] (kombu's priority lists, highest first) and, unless ARGV[1 + i] is
# "0" (a no-ack consumer's queue), records it as unacked the way kombu's QoS.append does: the hash holds
# `[message, exchange, routing_key]` (the raw message is spliced in, not re-encoded), the index the pop time
# (ARGV[1], the client's clock, as kombu's). KEYS[n + 1], KEYS[n + 2]: the unacked hash and index; the rest:
# the bells, dropped when every list is empty (safe: a producer pushes its message before its bell). A
# Redis at maxmemory never fails it halfway: RPOP frees memory and is allowed, and once a script has written,
# Redis (6 and 7) lets it finish its writes, so the HSET after a pop always lands.
POP_AND_RECORD = """
local lists = #KEYS - 2 - tonumber(ARGV[2])
for i = 1, lists do
  local raw = redis.call('RPOP', KEYS[i])
  if raw then
    if ARGV[2 + i] == '1' then
      local ok, message = pcall(cjson.decode, raw)
      if ok and type(message) == 'table' and type(message.properties) == 'table'
          and type(message.properties.delivery_tag) == 'string' then
        local info = message.properties.delivery_info
        if type(info) ~= 'table' then info = {} end
        local exchange, routing_key = info.exchange or '', info.routing_key or ''
        local tag = message.properties.delivery_tag
        redis.call('HSET', KEYS[lists + 1], tag,
          '[' .. raw .. ',' .. cjson.encode(exchange) .. ',' .. cjson.encode(routing_key) .. ']')
        redis.call('ZADD', KEYS[lists + 2], ARGV[1], tag)
        return {KEYS[i], raw, 1}
      end
    end
    return {KEYS[i], raw, 0}
  end
end
for i = lists + 3, #KEYS do
  redis.call('DEL', KEYS[i])
end
return false
"""


# (command, args, kwargs): a redis-py call, as `getattr(pipe, command)(*args, **kwargs)`.
RedisCommand = tuple[str, tuple, dict]
_before_message = threading.local()


class Riders:
    """Commands that go to Redis in the round trip of the next message this thread pushes, before it (see
    `riding_with_the_message`). `carried` says whether a push took them."""

    def __init__(self, commands: Sequence[RedisCommand]) -> None:
        self.commands = list(commands)
        self.carried = False

    def add_to(self, pipe) -> None:
        for command, args, kwargs in self.commands:
            getattr(pipe, command)(*args, **kwargs)
        self.carried = True


@contextlib.contextmanager
def riding_with_the_message(commands: Sequence[RedisCommand]) -> Iterator[Riders]:
    """Within the block, every message this thread pushes onto a queue list (one, from a `send_task`) has
    `commands` written in the same pipeline, ahead of it: a job's meta lands before its message can be
    popped, in the push's round trip instead of one of its own. A push kombu retries carries them again
    (they must be idempotent). Only this transport honours them: on any other broker `carried` stays False,
    and the caller writes them itself."""
    riders = Riders(commands)
    _before_message.riders = riders
    try:
        yield riders
    finally:
        _before_message.riders = None


def _riders() -> Riders | None:
    riders = getattr(_before_message, "riders", None)
    return riders if riders is not None and riders.commands else None


def bell_key(queue: str) -> str:
    """The list a worker blocks on for `queue` (outside kombu's and inferq's key names)."""
    return f"_inferq.bell.{queue}"


class QoS(kombu_redis.QoS):
    def append(self, message, delivery_tag):
        if delivery_tag in self.channel.recorded_by_pop:
            self.channel.recorded_by_pop.discard(delivery_tag)
            return virtual.QoS.append(self, message, delivery_tag)  # kombu's bookkeeping, minus the write
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

    def reject(self, delivery_tag, requeue=False):
        # A job handed back (a warm shutdown's deadline, a lost lease, a Redis outage) goes back to the head of
        # its queue, where the reaper puts a dead worker's jobs too: kombu's reject pushes it at the tail
        # (leftmost), behind the whole backlog, while a client may be streaming it.
        if requeue:
            self.restore_by_tag(delivery_tag, leftmost=False)
            return virtual.QoS.ack(self, delivery_tag)
        return super().reject(delivery_tag, requeue=False)

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

    def __init__(self, *args, **kwargs):
        # Set before kombu's __init__, which may already consume.
        self.recorded_by_pop: set[str] = set()  # tags the pop script recorded; QoS.append skips their write
        self._no_ack_queues: set[str] = set()
        self._polled_queues: list[str] = []
        self._pop_script = None
        super().__init__(*args, **kwargs)

    def basic_consume(self, queue, *args, **kwargs):
        no_ack = kwargs["no_ack"] if "no_ack" in kwargs else bool(args and args[0])
        (self._no_ack_queues.add if no_ack else self._no_ack_queues.discard)(queue)
        return super().basic_consume(queue, *args, **kwargs)

    def _put(self, queue, message, **kwargs):
        bell = bell_key(queue)
        riders = _riders()
        batch = kwargs.get("_publish_batch")
        if riders is not None and (batch is not None or (self._expires and queue in self._expires)):
            with self.conn_or_acquire() as client:  # kombu's own paths below: the riders go first, on their own
                with client.pipeline(transaction=False) as pipe:
                    riders.add_to(pipe)
                    pipe.execute()
        if batch is not None:
            super()._put(queue, message, **kwargs)
            batch.add("lpush", bell, "1")
            return
        if self._expires and queue in self._expires:
            super()._put(queue, message, **kwargs)  # kombu's own pipeline; the bell follows it
            with self.conn_or_acquire() as client:
                client.lpush(bell, "1")
            return
        key = self._q_for_pri(queue, self._get_message_priority(message, reverse=False))
        with self.conn_or_acquire() as client:
            with client.pipeline(transaction=False) as pipe:
                if riders is not None:
                    riders.add_to(pipe)
                pipe.lpush(key, dumps(message)).lpush(bell, "1").execute()

    def _do_restore_message(self, payload, exchange, routing_key, pipe, leftmost=False):
        super()._do_restore_message(payload, exchange, routing_key, pipe, leftmost)
        for queue in self._lookup(exchange, routing_key):
            pipe.lpush(bell_key(queue), "1")

    def _brpop_start(self, timeout=None):
        if timeout is None:
            timeout = self.brpop_timeout
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        self._polled_queues = list(queues)
        self._in_poll = self.client.connection
        self._brpop_sent_at = time.monotonic()
        bells = [bell_key(queue) for queue in queues]
        self.client.connection.send_command("BRPOP", *bells, timeout or 0)

    def _brpop_read(self, **options):
        try:
            try:
                rang = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                self.client.connection.disconnect()  # as kombu: the next poll reconnects
                raise
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()
        # Rung or timed out, take what waits now: a timeout finds what was pushed without a bell.
        # A connection error raises to Celery's consumer, which reconnects, as from kombu's BRPOP; had the script
        # run before the reply was lost, its message waits in the unacked hash for the reaper.
        while True:
            popped = self._pop_and_record(self._polled_queues)
            if popped is None:
                raise Empty()
            dest, raw, recorded = popped
            try:
                message = loads(raw)
                if recorded:
                    self.recorded_by_pop.add(message["properties"]["delivery_tag"])
                self._queue_cycle.rotate(dest)
                self.connection._deliver(message, dest)
            except MALFORMED as error:  # before kombu's connection errors, which count KeyError among them
                log.error("dropped a malformed message from a queue list (%s: %s)", type(error).__name__, error)
                continue  # garbage came without a bell, so it must not use up the one that woke this poll
            if rang is None:
                # Found without a bell: its producer rings none, and what else it pushed would wait a
                # timeout each. Ringing for it makes the next poll look again at once.
                with self.conn_or_acquire() as client:
                    client.lpush(bell_key(dest), "1")
            return True  # something was read; the poller goes on

    def _pop_and_record(self, queues: list[str]) -> tuple[str, str, bool] | None:
        """(queue, raw message, recorded as unacked) popped from the first non-empty list, or None."""
        # kombu's BRPOP order: priority first, then queue; steps that map to one list name it once
        queue_of = {self._q_for_pri(queue, priority): queue for priority in self.priority_steps for queue in queues}
        record = ["0" if queue in self._no_ack_queues else "1" for queue in queue_of.values()]
        bells = [bell_key(queue) for queue in queues]
        with self.conn_or_acquire() as client:
            if self._pop_script is None:
                self._pop_script = client.register_script(POP_AND_RECORD)
            reply = self._pop_script(
                keys=[*queue_of, self.unacked_key, self.unacked_index_key, *bells],
                args=[time.time(), len(bells), *record],
                client=client,
            )
        if not reply:
            return None
        key, raw, recorded = reply
        return queue_of[bytes_to_str(key)], bytes_to_str(raw), bool(recorded)


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
