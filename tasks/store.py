"""Every Redis operation on inferq's keys, for workers and clients alike (arq's `ArqRedis` idea).

Records, metas, events, cancels, leases, delivery counts, the worker registry and subscriptions all go
through this one class, so the key layout and the encodings exist once (names in tasks/names.py).

Writes a running job makes are fenced by its lease: a worker that lost its lease (it stalled for longer
than the lease lifetime, and another delivery took the job over) can no longer publish or record.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from redis.asyncio import Redis

from tasks import names
from tasks.batch_store import BatchStore
from tasks.broker import RedisCommand
from tasks.config import QueueSettings
from tasks.errors import LeaseLost
from tasks.fleet import FleetView
from tasks.hub import EventHub, Follower
from tasks.pipelining import ReadBatcher
from tasks.queues import AmqpQueues, RedisQueues
from tasks.redis_connection import connect, connect_subscriber
from tasks.schemas import (
    STREAM_EVENT,
    FinalEvent,
    JobMeta,
    JobRecord,
    OwnerQuota,
    PlainToken,
    RestartEvent,
    TokenEvent,
    WorkerInfo,
)

EVENT_FIELD = "e"

Event = TokenEvent | RestartEvent | FinalEvent

# top_seq(stream): the seq of the stream's newest entry (ids are 0-<seq>), or 0.
_TOP_SEQ = """
local function top_seq(stream)
  local top = redis.call('xrevrange', stream, '+', '-', 'COUNT', 1)
  if #top > 0 then return tonumber(string.match(top[1][1], '-(%d+)$')) end
  return 0
end
"""

# Many jobs' events in one round trip. KEYS: each job's lease and events. ARGV: stream ttl, then for each job
# its token ('' = unfenced), channel and number of events, then its seq/event pairs. Returns each job's 1
# (written) or 0 (its lease is someone else's: nothing written). Events at or below a stream's top are
# skipped, so a retried append (after a timeout whose write went through) is harmless.
_APPEND = (
    _TOP_SEQ
    + """
local out = {}
local a = 2
for j = 1, #KEYS, 2 do
  local token, channel, n = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  a = a + 3
  if token ~= '' and redis.call('get', KEYS[j]) ~= token then
    out[#out + 1] = 0
  else
    local seq = top_seq(KEYS[j + 1])
    for i = a, a + 2 * n - 1, 2 do
      if tonumber(ARGV[i]) > seq then
        redis.call('xadd', KEYS[j + 1], '0-' .. ARGV[i], 'e', ARGV[i + 1])
        redis.call('publish', channel, ARGV[i + 1])
      end
    end
    redis.call('expire', KEYS[j + 1], ARGV[1])
    out[#out + 1] = 1
  end
  a = a + 2 * n
end
return out
"""
)

# KEYS: lease, events, record. ARGV: token ('' = unfenced), record json, record ttl, stream ttl, channel.
# Returns 1 written, 0 the job already had a record, -1 the lease is no longer ours. The lease is released
# with the write: a delivery that comes later finds the record. A lease gone with a record standing is 0,
# not -1: a retried finish whose first try went through (and released the lease) finds the job done.
# The final event is FinalEvent's own JSON layout, numbered after the last event in the log.
_FINISH = (
    _TOP_SEQ
    + """
if ARGV[1] ~= '' and redis.call('get', KEYS[1]) ~= ARGV[1] then
  if redis.call('exists', KEYS[3]) == 1 then return 0 end
  return -1
end
local written = redis.call('set', KEYS[3], ARGV[2], 'NX', 'EX', ARGV[3])
if ARGV[1] ~= '' then redis.call('del', KEYS[1]) end
if not written then return 0 end
local seq = top_seq(KEYS[2])
local final = '{"type":"final","seq":' .. (seq + 1) .. ',"record":' .. ARGV[2] .. '}'
redis.call('xadd', KEYS[2], '0-' .. (seq + 1), 'e', final)
redis.call('expire', KEYS[2], ARGV[4])
redis.call('publish', ARGV[5], final)
return 1
"""
)

log = logging.getLogger(__name__)

# How long a write waits for replicas, and, when they did not answer in time (after a failover the new
# master may have none), how long writes go unconfirmed before they wait again: a replica that is away
# must not cost every job a second.
REPLICA_WAIT_MS = 1000
REPLICAS_MISSING_PAUSE_S = 30.0

# KEYS: the owner's job set. ARGV: job id, submit time, max jobs (0: none), max queued (0: none), set ttl,
# then the record, job (meta) and lease key prefixes. Sweeps out jobs that have a record or no meta any
# more (finished, or vanished), counts the rest and those of them without a lease (not started), and
# admits the job if both counts are under their caps: 1 admitted, -1 too many in flight, -2 too many queued.
# The job itself is never counted: an idempotent retry of a try that was admitted and then failed to send
# finds its own id in the set, with its meta saved again.
_ADMIT_OWNED = """
local in_flight, queued = 0, 0
for _, id in ipairs(redis.call('zrange', KEYS[1], 0, -1)) do
  if redis.call('exists', ARGV[6] .. id) == 1 or redis.call('exists', ARGV[7] .. id) == 0 then
    redis.call('zrem', KEYS[1], id)
  elseif id ~= ARGV[1] then
    in_flight = in_flight + 1
    if redis.call('exists', ARGV[8] .. id) == 0 then queued = queued + 1 end
  end
end
if tonumber(ARGV[3]) > 0 and in_flight >= tonumber(ARGV[3]) then return -1 end
if tonumber(ARGV[4]) > 0 and queued >= tonumber(ARGV[4]) then return -2 end
redis.call('zadd', KEYS[1], ARGV[2], ARGV[1])
redis.call('expire', KEYS[1], ARGV[5])
return 1
"""

# KEYS: lease, events, record, deliveries, cancel mark, hand-backs. ARGV: token, lease ttl (ms), deliveries ttl
# (s). Everything a delivery needs to know before it runs, in one round trip: {0} the job has a record (done),
# {-1} another delivery holds the lease, or {1, delivery number, cancel mark, last seq in the replay log,
# deliveries handed back} with the lease taken. Looking at the record and taking the lease in one script leaves
# no gap between them. Run again with the token that holds the lease (redis-py retries a call whose reply was
# lost), it answers the same admission: it neither waits on its own lease nor counts a second delivery.
_ADMIT = (
    _TOP_SEQ
    + """
if redis.call('exists', KEYS[3]) == 1 then return {0} end
local attempt
if redis.call('get', KEYS[1]) == ARGV[1] then
  attempt = tonumber(redis.call('get', KEYS[4]) or 1)  -- this delivery's own, retried after a lost reply
else
  if not redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {-1} end
  attempt = redis.call('incr', KEYS[4])
  redis.call('expire', KEYS[4], ARGV[3])
end
return {1, attempt, redis.call('exists', KEYS[5]), top_seq(KEYS[2]), tonumber(redis.call('get', KEYS[6]) or 0)}
"""
)

_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
# KEYS: lease, hand-backs. ARGV: token, "1" when the delivery is handed back whole, the hand-backs' ttl (s).
# The DEL first: at maxmemory Redis refuses a script whose first write would grow memory, and lets one that
# has written go on, so a hand-back is counted even then.
_RELEASE = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
local released = redis.call('del', KEYS[1])
if ARGV[2] == '1' then
  redis.call('incr', KEYS[2])
  redis.call('expire', KEYS[2], ARGV[3])
end
return released
"""


@dataclass(frozen=True)
class Admission:
    """What a delivery learns when it tries to start its job (JobStore.admit)."""

    outcome: Literal["admitted", "recorded", "held"]  # lease taken; the job has a record; another delivery runs it
    attempt: int = 0  # this delivery's number: 1 for the first, more when earlier workers died under the job
    cancelled: bool = False  # a cancel was requested before it started
    last_seq: int = 0  # the replay log's last event: an earlier attempt's, which this one voids
    handed_back: int = 0  # of the earlier deliveries, those a worker gave back whole at its shutdown (not deaths)


@dataclass(frozen=True)
class EventWrite:
    """One job's events for JobStore.append_many, written only while `lease_token` holds its lease (None: always)."""

    job_id: str
    events: Sequence[Event | PlainToken]
    lease_token: str | None = None


class JobStore:
    def __init__(self, redis: Redis, settings: QueueSettings, client_name: str | None = None) -> None:
        self._redis = redis  # decode_responses=True
        self._reads = ReadBatcher(redis)  # the reads of one loop turn share a round trip
        self.settings = settings
        self._client_name = client_name
        self._append = redis.register_script(_APPEND)
        self._finish = redis.register_script(_FINISH)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._admit_owned = redis.register_script(_ADMIT_OWNED)
        self._admit = redis.register_script(_ADMIT)
        self._replicas_missing_until = 0.0

    @classmethod
    def open(cls, settings: QueueSettings, client_name: str | None = None) -> JobStore:
        """`client_name` labels its connections in Redis's CLIENT LIST (the subscriber's gets `:hub`)."""
        return cls(connect(settings, client_name), settings, client_name)

    @cached_property
    def hub(self) -> EventHub:
        """The one pub/sub connection of this store: job channels and the cancel channel, multiplexed."""
        return EventHub(connect_subscriber(self.settings, f"{self._client_name}:hub" if self._client_name else None))

    @cached_property
    def queues(self) -> RedisQueues | AmqpQueues:
        """The models' queues, read from the broker (Redis's lists, or RabbitMQ)."""
        return AmqpQueues(self.settings) if self.settings.uses_amqp else RedisQueues(self._redis)

    @cached_property
    def fleet(self) -> FleetView:
        """The live workers as this process sees them, cached briefly for all its waiters."""
        return FleetView(self.workers)

    @cached_property
    def batches(self) -> BatchStore:
        """The Batch API's files, batches and answered lines."""
        return BatchStore(self._redis, self._renew, self._release)

    async def ping(self) -> None:
        await self._redis.ping()

    async def aclose(self) -> None:
        if "hub" in self.__dict__:
            await self.hub.aclose()
        if "queues" in self.__dict__:
            await self.queues.aclose()
        # The pool too: a client given its pool (tasks/redis_connection.py) leaves it open by default.
        await self._redis.aclose(close_connection_pool=True)

    # -- records and metas -------------------------------------------------------------------

    async def finish(self, record: JobRecord, lease_token: str | None = None) -> bool:
        """Writes the job's one record (SET NX) and appends its final event; False if it had one.

        With `lease_token`, only while that lease is held: raises LeaseLost otherwise.
        """
        job_id = record.job_id
        keys = [names.lease_key(job_id), names.events_key(job_id), names.record_key(job_id)]
        args = [
            lease_token or "",
            record.model_dump_json(),
            self.settings.record_ttl_s,
            self.settings.stream_ttl_s,
            names.live_channel(job_id),
        ]
        if self._replicas_wanted():
            # Replication is asynchronous: a record only the master held would die with it, while the
            # message's ack (after this) might survive, and the job would be gone. WAIT on the same
            # connection as the write (a pipeline) holds the ack until a replica has the record.
            async with self._redis.pipeline(transaction=False) as pipe:
                await self._finish(keys=keys, args=args, client=pipe)
                pipe.wait(self.settings.replicas_needed, REPLICA_WAIT_MS)
                outcome, acked_by = await pipe.execute()
            self._note_replicas(acked_by, f"job {job_id}'s record")
        else:
            outcome = await self._finish(keys=keys, args=args)
        if outcome == -1:
            raise LeaseLost(f"job {job_id}: lease lost before its record was written")
        return outcome == 1

    async def confirm_submitted(self, job_id: str) -> None:
        """Returns once a replica holds everything written before now, the job's message included (with
        Sentinel; at once otherwise), so that a submit that returned survives a failover.

        kombu pushed the message on a connection of its own, and WAIT counts only the writes of the
        connection it runs on; but replication is one stream, so a write here, after the push, is past it.
        """
        if not self._replicas_wanted():
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.expire(names.job_key(job_id), self.settings.record_ttl_s)
            pipe.wait(self.settings.replicas_needed, REPLICA_WAIT_MS)
            _, acked_by = await pipe.execute()
        self._note_replicas(acked_by, f"job {job_id}'s submission")

    def _replicas_wanted(self) -> bool:
        return bool(self.settings.replicas_needed) and time.monotonic() >= self._replicas_missing_until

    def _note_replicas(self, acked_by: int, what: str) -> None:
        needed = self.settings.replicas_needed
        if acked_by < needed:
            self._replicas_missing_until = time.monotonic() + REPLICAS_MISSING_PAUSE_S
            log.warning(
                "%s reached %d of %d replicas in time; writes go unconfirmed for %.0f s",
                what, acked_by, needed, REPLICAS_MISSING_PAUSE_S,
            )  # fmt: skip

    async def record(self, job_id: str) -> JobRecord | None:
        raw = await self._reads.read("get", names.record_key(job_id))
        return JobRecord.model_validate_json(raw) if raw else None

    async def save_meta(self, meta: JobMeta) -> None:
        _, args, kwargs = self._meta_write(meta)
        await self._redis.set(*args, **kwargs)

    def meta_riding_with_the_message(self, meta: JobMeta) -> list[RedisCommand]:
        """The meta's write, as commands the broker sends in its push of the job's message, ahead of it
        (tasks/broker.py): the same write as `save_meta`, without a round trip of its own."""
        return [self._meta_write(meta)]

    def _meta_write(self, meta: JobMeta) -> RedisCommand:
        return ("set", (names.job_key(meta.job_id), meta.model_dump_json()), {"ex": self.settings.record_ttl_s})

    async def claim_meta(self, meta: JobMeta) -> JobMeta | None:
        """Saves the meta of an idempotent submit unless its job exists: None when this call made it, else the
        meta already there (one round trip: Redis 6.2 takes no GET with NX, so a pipeline reads it after)."""
        while True:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(names.job_key(meta.job_id), meta.model_dump_json(), ex=self.settings.record_ttl_s, nx=True)
                pipe.get(names.job_key(meta.job_id))
                made, raw = await pipe.execute()
            if made:
                return None
            if raw is not None:  # else it expired between the two commands: claim it again
                return JobMeta.model_validate_json(raw)

    async def mark_sent(self, job_id: str) -> None:
        await self._redis.set(names.sent_key(job_id), "1", ex=self.settings.record_ttl_s)

    async def submit_state(self, job_id: str) -> Literal["sent", "recorded", "unsent", "gone"]:
        """Where an idempotent submit's first try stands, in one round trip: its message sent, its job recorded,
        neither yet (its meta alone), or nothing (it was refused and forgot its meta)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(names.sent_key(job_id))
            pipe.exists(names.record_key(job_id))
            pipe.exists(names.job_key(job_id))
            sent, recorded, known = await pipe.execute()
        return "sent" if sent else "recorded" if recorded else "unsent" if known else "gone"

    async def claim_resend(self, job_id: str) -> bool:
        """True for the one caller that may send a dead first try's message again."""
        key, token = names.resend_key(job_id), uuid.uuid4().hex
        if await self._redis.set(key, token, nx=True, ex=self.settings.record_ttl_s):
            return True
        # redis-py sends a command again when its reply was lost: that second SET finds the first one's claim,
        # which is this caller's own (no claim at all would be sent by anyone, and the job's waiters wait for ever).
        return await self._redis.get(key) == token

    async def release_resend(self, job_id: str) -> None:
        """For a resend that failed: the next retry may claim it."""
        await self._redis.delete(names.resend_key(job_id))

    async def forget_meta(self, job_id: str) -> None:
        """For a job refused after its meta was written: it never existed."""
        await self._redis.delete(names.job_key(job_id))

    async def admit_owned(self, meta: JobMeta, quota: OwnerQuota) -> Literal["admitted", "in_flight", "queued"]:
        """Counts the job against its owner's quota, atomically: "admitted", or which cap it would pass.

        The meta must be saved first: the sweep drops jobs without one."""
        outcome = await self._admit_owned(
            keys=[names.owner_jobs_key(meta.owner)],
            args=[
                meta.job_id,
                meta.queued_at,
                quota.max_jobs or 0,
                quota.max_queued or 0,
                self.settings.record_ttl_s,
                names.RECORD_KEY_PREFIX,
                names.JOB_KEY_PREFIX,
                names.LEASE_KEY_PREFIX,
            ],
        )
        return {1: "admitted", -1: "in_flight", -2: "queued"}[outcome]

    async def meta(self, job_id: str) -> JobMeta | None:
        raw = await self._reads.read("get", names.job_key(job_id))
        return JobMeta.model_validate_json(raw) if raw else None

    # -- events ------------------------------------------------------------------------------

    async def append(self, job_id: str, events: Sequence[Event], lease_token: str | None = None) -> None:
        """Logs events for late readers and publishes them for live ones, in one round trip.

        With `lease_token`, only while that lease is held: raises LeaseLost otherwise.
        """
        if await self.append_many([EventWrite(job_id, events, lease_token)]):
            raise LeaseLost(f"job {job_id}: lease lost; this copy may not publish")

    async def append_many(self, writes: Sequence[EventWrite]) -> list[str]:
        """`append` for many jobs in one round trip (a worker's streams, flushed together); returns the jobs
        whose lease was someone else's, of which nothing was written."""
        keys: list[str] = []
        args: list[str | int] = [self.settings.stream_ttl_s]
        for write in writes:
            keys += [names.lease_key(write.job_id), names.events_key(write.job_id)]
            args += [write.lease_token or "", names.live_channel(write.job_id), len(write.events)]
            for event in write.events:
                args += [event.seq, encode_event(event)]
        written = await self._append(keys=keys, args=args)
        return [write.job_id for write, ok in zip(writes, written, strict=True) if not ok]

    async def follow_events(self, job_id: str) -> Follower:
        """Subscribes to the job's live channel; returns once events published from now on will arrive."""
        return await self.hub.follow(names.live_channel(job_id))

    async def follow_cancels(self) -> Follower:
        return await self.hub.follow(names.CANCEL_CHANNEL)

    async def unfollow(self, follower: Follower) -> None:
        await self.hub.unfollow(follower)

    async def events_after(self, job_id: str, seq: int) -> list[Event]:
        entries = await self._reads.read("xrange", names.events_key(job_id), min=f"0-{seq + 1}")
        return [decode_event(fields[EVENT_FIELD]) for _, fields in entries]

    # -- cancellation ------------------------------------------------------------------------

    async def request_cancel(self, job_id: str) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(names.cancel_key(job_id), "1", ex=self.settings.record_ttl_s)
            pipe.publish(names.CANCEL_CHANNEL, job_id)
            await pipe.execute()

    async def cancels_requested(self, job_ids: Sequence[str]) -> set[str]:
        """Which of these jobs have a cancel mark (one round trip, for a listener that reconnected)."""
        if not job_ids:
            return set()
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.exists(names.cancel_key(job_id))
            marks = await pipe.execute()
        return {job_id for job_id, mark in zip(job_ids, marks, strict=True) if mark}

    # -- leases and deliveries ---------------------------------------------------------------

    async def admit(self, job_id: str, token: str, ttl_s: float) -> Admission:
        """Takes the job's lease for this delivery unless the job is done or another delivery holds it, and
        counts the delivery; one round trip (a worker starts every job with it)."""
        keys = [
            names.lease_key(job_id),
            names.events_key(job_id),
            names.record_key(job_id),
            names.deliveries_key(job_id),
            names.cancel_key(job_id),
            names.handbacks_key(job_id),
        ]
        reply = await self._admit(keys=keys, args=[token, int(ttl_s * 1000), self.settings.record_ttl_s])
        if reply[0] != 1:
            return Admission("recorded" if reply[0] == 0 else "held")
        _, attempt, cancelled, last_seq, handed_back = reply
        return Admission("admitted", attempt=int(attempt), cancelled=bool(cancelled), last_seq=int(last_seq),
                         handed_back=int(handed_back))  # fmt: skip

    async def renew_lease(self, job_id: str, token: str, ttl_s: float) -> bool:
        """False when the lease is no longer this token's (it lapsed, and maybe another worker took it)."""
        return bool(await self._renew(keys=[names.lease_key(job_id)], args=[token, int(ttl_s * 1000)]))

    async def release_lease(self, job_id: str, token: str, *, handed_back: bool = False) -> None:
        """Lets the lease go (if still this delivery's); `handed_back`: the job goes back to the queue whole, and
        this delivery is not held against it as a death."""
        keys = [names.lease_key(job_id), names.handbacks_key(job_id)]
        await self._release(keys=keys, args=[token, "1" if handed_back else "0", self.settings.record_ttl_s])

    async def is_running(self, job_id: str) -> bool:
        return bool(await self._reads.read("exists", names.lease_key(job_id)))

    # -- the worker registry -----------------------------------------------------------------

    async def announce(self, info: WorkerInfo, ttl_s: float) -> None:
        await self._redis.set(names.worker_key(info.hostname), info.model_dump_json(), px=int(ttl_s * 1000))

    async def retire(self, hostname: str) -> None:
        await self._redis.delete(names.worker_key(hostname))

    async def workers(self) -> list[WorkerInfo]:
        """The live workers (each re-announces itself every few seconds)."""
        keys = [key async for key in self._redis.scan_iter(match=names.WORKER_KEY_PATTERN, count=1000)]
        raw = await self._redis.mget(keys) if keys else []
        return [WorkerInfo.model_validate_json(value) for value in raw if value]

    async def worker(self, hostname: str) -> WorkerInfo | None:
        raw = await self._redis.get(names.worker_key(hostname))
        return WorkerInfo.model_validate_json(raw) if raw else None


def encode_event(event: Event | PlainToken) -> str:
    if isinstance(event, PlainToken):
        return event.json()
    return event.model_dump_json(exclude_none=True)  # a token's event: few bytes


def decode_event(raw: str | bytes) -> Event:
    return STREAM_EVENT.validate_json(raw)
