"""The one way inferq opens Redis: a small blocking pool, and retries that ride out a restart.

redis-py's default asyncio pool refuses the 101st concurrent command (MaxConnectionsError); a blocking
pool makes the 101st wait for a connection instead, so thousands of waiting jobs share a few sockets.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
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


def connect(settings: QueueSettings, client_name: str | None = None) -> Redis:
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections - 1,  # the subscriber (tasks/hub.py) is the last one
        timeout=None,  # wait for a free connection rather than fail
        decode_responses=True,
        health_check_interval=30,
        retry=Retry(ExponentialWithJitterBackoff(cap=2.0, base=0.05), RETRIES),
        retry_on_error=list(TRANSIENT_ERRORS),
        client_name=client_name,
    )
    return Redis(connection_pool=pool)


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
