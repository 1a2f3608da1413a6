"""The one way inferq opens Redis: a small blocking pool, and retries that ride out a restart.

redis-py's default asyncio pool refuses the 101st concurrent command (MaxConnectionsError); a blocking
pool makes the 101st wait for a connection instead, so thousands of waiting jobs share a few sockets.

With `sentinel://` URLs every connection asks the Sentinels where the master is when it (re)connects:
after a failover the same retries that ride out a restart land on the promoted replica.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import BusyLoadingError, ConnectionError, RedisError, TimeoutError

from tasks.config import QueueSettings
from tasks.errors import LeaseLost

log = logging.getLogger(__name__)
T = TypeVar("T")

# About 15 s of retries (0.05 s doubling to 2 s): longer than a Redis restart that reloads its
# append-only file, short enough that a Redis that stays away is reported.
RETRIES = 12
TRANSIENT_ERRORS = (ConnectionError, TimeoutError, BusyLoadingError)


class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """The master's connections, found through Sentinel, in a pool that waits when all are in use."""


def connect(settings: QueueSettings, client_name: str | None = None) -> Redis:
    """The commands' pool: `redis_max_connections - 1` sockets, shared by every coroutine of the process."""
    options = {
        "max_connections": settings.redis_max_connections - 1,  # the subscriber (tasks/hub.py) is the last one
        "timeout": None,  # wait for a free connection rather than fail
        "decode_responses": True,
        "health_check_interval": 30,
        "retry": Retry(ExponentialWithJitterBackoff(cap=2.0, base=0.05), RETRIES),
        "retry_on_error": list(TRANSIENT_ERRORS),
        "client_name": client_name,
    }
    if settings.uses_sentinel:
        return _sentinel(settings).master_for(
            settings.sentinel_master, connection_pool_class=BlockingSentinelPool, **options
        )
    return Redis(connection_pool=BlockingConnectionPool.from_url(settings.redis_url, **options))


def connect_subscriber(settings: QueueSettings, client_name: str | None = None) -> Redis:
    """One connection of its own, without redis-py's retries: its reader notices every disconnect."""
    options = {"decode_responses": True, "retry": None, "health_check_interval": 15, "client_name": client_name}
    if settings.uses_sentinel:
        return _sentinel(settings).master_for(settings.sentinel_master, **options)
    return Redis.from_url(settings.redis_url, **options)


def _sentinel(settings: QueueSettings) -> Sentinel:
    """`sentinel://:password@host:port/db;sentinel://host2:port`: the first URL's password and database are
    the master's (as kombu reads them), every URL names one Sentinel."""
    parts = [urlsplit(url) for url in settings.redis_url.split(";")]
    first = parts[0]
    return Sentinel(
        [(part.hostname, part.port or 26379) for part in parts],
        sentinel_kwargs={"password": settings.sentinel_password},
        username=unquote(first.username) if first.username else None,
        password=unquote(first.password) if first.password else None,
        db=int(first.path.strip("/") or 0),
    )


async def retry_transient(operation: Callable[[], Awaitable[T]], budget_s: float, what: str) -> T:
    """Runs `operation()` until it succeeds, backing off, for at most `budget_s` (then re-raises).

    For writes a job cannot do without (its events, its record): a Redis that restarts, or refuses
    writes for a while (maxmemory under noeviction), must not cost the job. LeaseLost is final.
    """
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + budget_s
    delay_s = 0.05
    while True:
        try:
            return await operation()
        except LeaseLost:
            raise
        except (RedisError, OSError) as error:
            if loop.time() + delay_s > give_up_at:
                raise
            log.warning("%s failed (%s); retrying in %.2f s", what, error, delay_s)
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 2.0)
