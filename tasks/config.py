"""Settings both sides of the queue share; read from `INFERQ_*` environment variables."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class QueueSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INFERQ_", extra="forbid")

    redis_url: str = Field(DEFAULT_REDIS_URL, description="broker, result backend and token streams")
    visibility_timeout_s: int = Field(
        6 * 3600,
        ge=60,
        description="a job unacked this long is delivered again; keep it far above the longest job",
    )
    record_ttl_s: int = Field(24 * 3600, ge=60, description="how long job records are kept")
    stream_ttl_s: int = Field(3600, ge=10, description="how long a job's token replay log is kept")
    max_payload_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="largest job payload (JSON bytes) accepted at submit and by workers"
    )
    no_worker_grace_s: float = Field(
        5.0, gt=0, description="a waited-for job whose model has had no live worker this long fails (NoSuchModel)"
    )
    redis_max_connections: int = Field(
        5,
        ge=2,
        description="Redis connections one client or worker process opens for commands, the subscriber included",
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme not in ("redis", "rediss"):
            raise ValueError(f"must be a redis:// or rediss:// URL, not {scheme or 'no scheme'}")
        return value

    @property
    def redacted_url(self) -> str:
        """The Redis URL with its password replaced, for logs and messages."""
        return redacted(self.redis_url)

    @property
    def uses_tls(self) -> bool:
        return urlsplit(self.redis_url).scheme == "rediss"


def redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def settings_problems(exc: ValidationError) -> str:
    """Each bad setting and what is wrong with it, without the values given (a URL may hold a password)."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
