"""What the runtime's tests share: a Celery app to send raw messages with, and Redis as an observer."""

import pytest
import redis

from tasks import make_app
from tasks.config import QueueSettings
from tasks.schemas import JobRecord


@pytest.fixture(scope="session")
def celery_app(redis_url):
    app = make_app(QueueSettings(redis_url=redis_url))
    yield app
    app.close()


@pytest.fixture(scope="session")
def observer(redis_url):
    """Reads the workers' database directly, as an outside observer would."""
    return redis.Redis.from_url(redis_url, decode_responses=True)


@pytest.fixture(scope="session")
def record_of(observer):
    def read(job_id: str) -> JobRecord | None:
        raw = observer.get(f"inferq:record:{job_id}")
        return JobRecord.model_validate_json(raw) if raw else None

    return read


def chat_payload(text: str, model: str = "echo", **fields) -> dict:
    import time

    return {"model": model, "queued_at": time.time(), "messages": [{"role": "user", "content": text}], **fields}
