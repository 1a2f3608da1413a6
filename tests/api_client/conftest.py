"""What the client twins share."""

import json
import threading
from urllib.parse import urlsplit

import psutil
import pytest
import redis


@pytest.fixture(scope="session")
def latest_job_id(redis_url):
    """`latest_job_id()`: the id of the newest job submitted (the convenience methods do not hand out their
    job). Read straight from Redis, as an observer: metas are `inferq:job:<id>` with `queued_at`."""
    observer = redis.Redis.from_url(redis_url, decode_responses=True)

    def newest() -> str:
        metas = [json.loads(observer.get(key) or "{}") for key in observer.scan_iter(match="inferq:job:*", count=1000)]
        return max((meta for meta in metas if meta), key=lambda meta: meta["queued_at"])["job_id"]

    return newest


# A client's pools, its subscriber and its producer: a handful of sockets, whatever it waits for.
FEW_SOCKETS = 16


@pytest.fixture
def redis_sockets(redis_url):
    """`redis_sockets()`: how many TCP connections this test process holds to the session's Redis now (pooled
    connections stay open once made, so after a crowd of jobs this is the most the crowd needed)."""
    port = urlsplit(redis_url).port
    return lambda: sum(1 for c in psutil.Process().net_connections("tcp") if c.raddr and c.raddr.port == port)


class LooksAtFirstTry:
    """An idempotent retry's looks at where its first try stands: counted, and `seen` set at the first (a
    threading.Event: the sync client's retry runs on its loop thread)."""

    def __init__(self) -> None:
        self.count = 0
        self.seen = threading.Event()


def looks_at_first_try(monkeypatch, store) -> LooksAtFirstTry:
    """Counts a client's retries looking at their first tries (they found its meta and wait for it, or send it)."""
    looks, real = LooksAtFirstTry(), store.submit_state

    async def submit_state(job_id):
        looks.count += 1
        looks.seen.set()
        return await real(job_id)

    monkeypatch.setattr(store, "submit_state", submit_state)
    return looks
