"""What the client twins share."""

import json

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
