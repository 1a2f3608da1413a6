"""Settings both sides of the queue share; read from `INFERQ_*` environment variables."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class QueueSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INFERQ_", extra="forbid")

    redis_url: str = Field(
        DEFAULT_REDIS_URL,
        description="broker, job records and token streams: redis://, rediss://, or Sentinels as "
        "sentinel://:password@host:26379/0;sentinel://host2:26379 (the password is the master's)",
    )
    broker_url: str | None = Field(
        None,
        description="the queues only, when they are not on Redis: amqp:// or amqps:// (RabbitMQ); records and "
        "token streams stay on redis_url",
    )
    amqp_queue_type: Literal["quorum", "classic"] = Field(
        "quorum",
        description="RabbitMQ queue type: quorum (replicated; priorities from RabbitMQ 4.0) or classic "
        "(x-max-priority 10, priorities on any version, one node)",
    )
    sentinel_master: str = Field("mymaster", description="with sentinel:// URLs: the master's name in Sentinel")
    sentinel_password: str | None = Field(None, description="with sentinel:// URLs: the Sentinels' own password")
    replica_acks: int | None = Field(
        None,
        ge=0,
        description="replicas that must hold a submitted job before submit returns, and a job's record before "
        "its message is acked (Redis WAIT, at most 1 s); default: 1 with sentinel:// URLs, else 0",
    )
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
    send_grace_s: float = Field(
        30.0,
        gt=0,
        description="a retry under an idempotency key whose first try has sent nothing this long (its producer died "
        "between saving the job and sending it) sends the job itself",
    )
    media_remote_urls: bool = Field(
        False,
        description="images may be http(s) URLs, which workers fetch (public addresses only, capped in size and "
        "time); off: data URLs only",
    )
    redis_max_connections: int = Field(
        5,
        ge=2,
        description="Redis connections one client or worker process opens for commands, the subscriber included",
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        schemes = [urlsplit(part).scheme for part in value.split(";")]
        if len(schemes) > 1 and set(schemes) != {"sentinel"}:
            raise ValueError("only sentinel:// URLs can be listed with ';' (one for each Sentinel)")
        if schemes[0] not in ("redis", "rediss", "sentinel"):
            raise ValueError(f"must be a redis://, rediss:// or sentinel:// URL, not {schemes[0] or 'no scheme'}")
        return value

    @field_validator("broker_url")
    @classmethod
    def _broker_scheme(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("amqp", "amqps"):
            raise ValueError("must be an amqp:// or amqps:// URL (a Redis broker is redis_url itself)")
        return value

    @property
    def broker(self) -> str:
        """Where the queues are: RabbitMQ when broker_url is set, else the Redis of redis_url."""
        return self.broker_url or self.redis_url

    @property
    def uses_amqp(self) -> bool:
        return self.broker_url is not None

    @property
    def redacted_url(self) -> str:
        """The Redis URL with its password replaced, for logs and messages."""
        return redacted(self.redis_url)

    @property
    def uses_tls(self) -> bool:
        return urlsplit(self.redis_url).scheme == "rediss"

    @property
    def uses_sentinel(self) -> bool:
        return urlsplit(self.redis_url).scheme == "sentinel"

    @property
    def replicas_needed(self) -> int:
        if self.replica_acks is not None:
            return self.replica_acks
        return 1 if self.uses_sentinel else 0


def redacted(url: str) -> str:
    return ";".join(_redacted_one(part) for part in url.split(";"))


def _redacted_one(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def settings_problems(exc: ValidationError) -> str:
    """Each bad setting and what is wrong with it, without the values given (a URL may hold a password)."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
