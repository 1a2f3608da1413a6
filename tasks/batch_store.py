"""The Batch API's state in Redis, beside the jobs' records (`JobStore.batches`): files, batches, their leases
and their answered lines. It holds strings and hashes; the gateway owns what they mean (gateway/batch_objects.py).

A batch is a hash whose `status` only moves by `transition` (a script: from one of the expected statuses, or
not at all), so a cancel and the coordinator's own moves can never overwrite each other. A batch is created once
(`add_batch` claims its id), so two creates under one idempotency key cannot both write it. Each line's answer is
written once (HSETNX by custom_id), so two coordinators that ever drove the same batch still write each line once,
and only while the batch is active: a coordinator that wakes after another retired the batch writes nothing back.
Its driver's other writes (`update_driven_batch`) hold only while its lease is the driver's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping
from typing import Literal

from pydantic import BaseModel
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from tasks import names

# KEYS: the batch. ARGV: the new status, its `<status>_at` time, then the statuses it may move from.
_TRANSITION = """
local status = redis.call('hget', KEYS[1], 'status')
for i = 3, #ARGV do
  if status == ARGV[i] then
    redis.call('hset', KEYS[1], 'status', ARGV[1], ARGV[1] .. '_at', ARGV[2])
    return 1
  end
end
return 0
"""
# KEYS: the hash for this outcome, the other outcome's, the active batches. ARGV: custom_id, line, the batch.
# A line is answered once, either way, and never after its batch was retired (that would leave hashes for ever).
_RECORD_LINE = """
if not redis.call('zscore', KEYS[3], ARGV[3]) then return 0 end
if redis.call('hexists', KEYS[2], ARGV[1]) == 1 then return 0 end
return redis.call('hsetnx', KEYS[1], ARGV[1], ARGV[2])
"""
# KEYS: the batch, its owner's batches, the active batches, its owner's active batches. ARGV: created_at, the
# batch id, the owner's cap of unfinished batches (0: none), the batches' key prefix, the ended statuses (as
# ",a,b,"), then field, value pairs. A batch its driver has ended but not yet retired (one round trip later) is
# finished already: it does not count. (Its hash is named from its id here, which a script may only do on one
# Redis, not a cluster: inferq's case.)
_ADD_BATCH = """
if redis.call('exists', KEYS[1]) == 1 then return 'exists' end
local cap = tonumber(ARGV[3])
if cap > 0 and redis.call('zcard', KEYS[4]) >= cap then
  local unfinished = 0
  for _, id in ipairs(redis.call('zrange', KEYS[4], 0, -1)) do
    local status = redis.call('hget', ARGV[4] .. id, 'status') or ''
    if not string.find(ARGV[5], ',' .. status .. ',', 1, true) then unfinished = unfinished + 1 end
  end
  if unfinished >= cap then return 'over_cap' end
end
redis.call('hset', KEYS[1], unpack(ARGV, 6))
redis.call('zadd', KEYS[2], ARGV[1], ARGV[2])
redis.call('zadd', KEYS[3], ARGV[1], ARGV[2])
redis.call('zadd', KEYS[4], ARGV[1], ARGV[2])
return 'added'
"""
# KEYS: the batch, its lease. ARGV: the driver's lease token, then field, value pairs.
_UPDATE_DRIVEN = """
if redis.call('get', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('hset', KEYS[1], unpack(ARGV, 2))
return 1
"""
_TAKE = "return redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0"


class BatchInfo(BaseModel):
    """A running batch's progress, as `inferq status` shows it."""

    id: str
    owner: str
    status: str
    endpoint: str
    created_at: int
    total: int = 0
    completed: int = 0
    failed: int = 0
    in_flight: int = 0
    output_tokens: int = 0
    eta_s: float | None = None

    @classmethod
    def of(cls, fields: Mapping[str, str]) -> BatchInfo:
        known = {name: value for name, value in fields.items() if name in cls.model_fields and value != ""}
        return cls.model_validate(known)


class BatchStore:
    def __init__(self, redis: Redis, renew: AsyncScript, release: AsyncScript) -> None:
        self._redis = redis  # decode_responses=True
        self._renew, self._release = renew, release
        self._transition = redis.register_script(_TRANSITION)
        self._take = redis.register_script(_TAKE)
        self._record_line = redis.register_script(_RECORD_LINE)
        self._add_batch = redis.register_script(_ADD_BATCH)
        self._update_driven = redis.register_script(_UPDATE_DRIVEN)

    # -- files -------------------------------------------------------------------------------

    async def add_file(self, file_id: str, owner: str, created_at: int, fields: Mapping[str, str]) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(names.file_key(file_id), mapping={**fields, "owner": owner})
            pipe.zadd(names.owner_files_key(owner), {file_id: created_at})
            await pipe.execute()

    async def file(self, file_id: str) -> dict[str, str] | None:
        return await self._redis.hgetall(names.file_key(file_id)) or None

    async def files_of(self, owner: str, newest_first: bool) -> list[dict[str, str]]:
        """An owner's files, by creation time (one round trip for their descriptions)."""
        key = names.owner_files_key(owner)
        ids = await (self._redis.zrevrange(key, 0, -1) if newest_first else self._redis.zrange(key, 0, -1))
        async with self._redis.pipeline(transaction=False) as pipe:
            for file_id in ids:
                pipe.hgetall(names.file_key(file_id))
            found = await pipe.execute() if ids else []
        return [fields for fields in found if fields]

    async def remove_file(self, file_id: str, owner: str) -> bool:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(names.file_key(file_id))
            pipe.zrem(names.owner_files_key(owner), file_id)
            deleted, _ = await pipe.execute()
        return bool(deleted)

    # -- batches -----------------------------------------------------------------------------

    async def add_batch(
        self,
        batch_id: str,
        owner: str,
        created_at: int,
        fields: Mapping[str, str],
        max_active: int | None = None,
        ended: Collection[str] = (),
    ) -> Literal["added", "exists", "over_cap"]:
        """Creates the batch, unless one has this id already (`exists`: it is left as it is) or its owner has
        `max_active` batches whose status is not one of `ended` (`over_cap`), checked and counted in one step."""
        keys = [names.batch_key(batch_id), names.owner_batches_key(owner), names.ACTIVE_BATCHES_KEY,
                names.owner_active_batches_key(owner)]  # fmt: skip
        pairs = [item for field_value in {**fields, "owner": owner}.items() for item in field_value]
        prefix = names.batch_key("")
        args = [created_at, batch_id, max_active or 0, prefix, f",{','.join(ended)},", *pairs]
        return await self._add_batch(keys=keys, args=args)

    async def batch(self, batch_id: str) -> dict[str, str] | None:
        return await self._redis.hgetall(names.batch_key(batch_id)) or None

    async def update_batch(self, batch_id: str, fields: Mapping[str, str]) -> None:
        """Fields other than `status` (counts, file ids, errors); the status moves by `transition` only."""
        await self._redis.hset(names.batch_key(batch_id), mapping=dict(fields))

    async def update_driven_batch(self, batch_id: str, token: str, fields: Mapping[str, str | int]) -> bool:
        """`update_batch` by the batch's driver: written only while `token` holds its lease (else False), so a
        driver that stalled past its lease never writes over what the batch's next driver wrote."""
        keys = [names.batch_key(batch_id), names.batch_lease_key(batch_id)]
        pairs = [item for field_value in fields.items() for item in field_value]
        return bool(await self._update_driven(keys=keys, args=[token, *pairs]))

    async def transition(self, batch_id: str, to: str, at: int, from_statuses: tuple[str, ...]) -> bool:
        return bool(await self._transition(keys=[names.batch_key(batch_id)], args=[to, at, *from_statuses]))

    async def batches_of(self, owner: str, after: str | None, limit: int) -> list[str]:
        """An owner's batch ids, newest first, from the one after `after` (a cursor: OpenAI's pagination)."""
        key = names.owner_batches_key(owner)
        start = 0
        if after is not None:
            rank = await self._redis.zrevrank(key, after)
            start = 0 if rank is None else rank + 1
        return await self._redis.zrevrange(key, start, start + limit - 1)

    async def active_batches(self) -> list[str]:
        return await self._redis.zrange(names.ACTIVE_BATCHES_KEY, 0, -1)

    async def unretired_batches_of(self, owner: str) -> list[dict[str, str]]:
        """An owner's batches not retired yet (at most its cap, and those ended a moment ago)."""
        found = [await self.batch(batch_id) for batch_id in await self._redis.zrange(
            names.owner_active_batches_key(owner), 0, -1)]  # fmt: skip
        return [fields for fields in found if fields is not None]

    async def running(self) -> list[BatchInfo]:
        """The batches not ended yet, oldest first."""
        found = [await self.batch(batch_id) for batch_id in await self.active_batches()]
        return [BatchInfo.of(fields) for fields in found if fields is not None]

    async def retire_batch(self, batch_id: str) -> None:
        """The batch has ended: no coordinator needs to drive it, and its lines live in its files now."""
        owner = await self._redis.hget(names.batch_key(batch_id), "owner")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(names.ACTIVE_BATCHES_KEY, batch_id)
            if owner is not None:
                pipe.zrem(names.owner_active_batches_key(owner), batch_id)
            pipe.delete(names.batch_lines_key(batch_id, True), names.batch_lines_key(batch_id, False))
            await pipe.execute()

    # -- the coordinator's lease -------------------------------------------------------------

    async def take_lease(self, batch_id: str, token: str, ttl_s: float) -> bool:
        return bool(await self._take(keys=[names.batch_lease_key(batch_id)], args=[token, int(ttl_s * 1000)]))

    async def renew_lease(self, batch_id: str, token: str, ttl_s: float) -> bool:
        return bool(await self._renew(keys=[names.batch_lease_key(batch_id)], args=[token, int(ttl_s * 1000)]))

    async def release_lease(self, batch_id: str, token: str) -> None:
        await self._release(keys=[names.batch_lease_key(batch_id)], args=[token])

    # -- answered lines ----------------------------------------------------------------------

    async def record_line(self, batch_id: str, custom_id: str, line: str, succeeded: bool) -> bool:
        """Writes a line's answer unless it has one, or its batch is retired (then False: this answer is dropped)."""
        keys = [names.batch_lines_key(batch_id, succeeded), names.batch_lines_key(batch_id, not succeeded),
                names.ACTIVE_BATCHES_KEY]  # fmt: skip
        return bool(await self._record_line(keys=keys, args=[custom_id, line, batch_id]))

    async def answered_ids(self, batch_id: str) -> set[str]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hkeys(names.batch_lines_key(batch_id, True))
            pipe.hkeys(names.batch_lines_key(batch_id, False))
            succeeded, failed = await pipe.execute()
        return set(succeeded) | set(failed)

    async def line_counts(self, batch_id: str) -> tuple[int, int]:
        """(answered, failed) lines so far."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hlen(names.batch_lines_key(batch_id, True))
            pipe.hlen(names.batch_lines_key(batch_id, False))
            succeeded, failed = await pipe.execute()
        return succeeded, failed

    async def lines(self, batch_id: str, succeeded: bool) -> AsyncIterator[tuple[str, str]]:
        async for custom_id, line in self._redis.hscan_iter(names.batch_lines_key(batch_id, succeeded), count=500):
            yield custom_id, line
