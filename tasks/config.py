"""Settings both sides of the queue share; read from `INFERQ_*` environment variables."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator
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

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme not in ("redis", "rediss"):
            raise ValueError(f"must be a redis:// or rediss:// URL, not {scheme or 'no scheme'}")
        return value

    @property
    def uses_tls(self) -> bool:
        return urlsplit(self.redis_url).scheme == "rediss"
