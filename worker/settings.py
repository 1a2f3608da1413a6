"""A worker's configuration: one `WorkerSettings`, from CLI flags and `INFERQ_*` variables, checked
before any model loads so that a typo fails in a second, not after a 40-second engine start."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import SettingsError

from engines.registry import ENGINES
from tasks.config import QueueSettings, settings_problems
from tasks.schemas import MODEL_NAME


class WorkerSettings(QueueSettings):
    engine: str = Field("huggingface", description=f"one of {', '.join(ENGINES)}")
    model: str = Field("smollm2", description="a checkpoint path, a hub name, or smollm2 (the default model)")
    name: str | None = Field(None, description="the served model name producers ask for; default: from --model")
    gpus: list[int] | None = Field(None, description="GPU indices this worker is pinned to")
    concurrency: int | None = Field(
        None, ge=1, le=4096, description="jobs running at once in the one engine; default: the engine's capacity"
    )
    engine_args: dict[str, Any] = Field(default_factory=dict)
    # A worker runs many jobs at once, each with its lease, events and record: more sockets than a client.
    redis_max_connections: int = Field(
        16, ge=2, description="Redis connections this worker opens for commands and its one subscriber, at most"
    )
    max_deliveries: int = Field(
        3, ge=1, description="a job delivered more often than this (it kept killing workers) fails"
    )
    lease_ttl_s: float = Field(30.0, ge=1, description="a dead worker's job lease lapses after this")
    heartbeat_s: float = Field(5.0, gt=0, description="how often the worker re-announces itself")
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="serve Prometheus metrics on this port (all interfaces); none: off"
    )
    max_queued: int | None = Field(
        None, ge=1, description="the most jobs that may wait in this model's queue; producers refuse more (QueueFull)"
    )
    max_runtime_s: float | None = Field(
        None, gt=0, description="longest a job may run once started; a job may set less, not more; none: no limit"
    )
    media_local_paths: bool = Field(
        False, description="images may be paths on this worker's disk (for producers that share it); off: refused"
    )
    shutdown_grace_s: float = Field(
        540.0,
        gt=0,
        description="after a SIGTERM, how long running jobs may finish before they are stopped and go back "
        "to the queue (keep it below the supervisor's stop timeout: compose gives 600 s)",
    )
    redis_outage_s: float = Field(
        60.0, gt=0, description="how long a running job retries writes Redis refuses before going back to the queue"
    )

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        if value not in ENGINES:
            raise ValueError(f"unknown engine {value!r}; choose one of {', '.join(ENGINES)}")
        return value

    @field_validator("gpus", mode="before")
    @classmethod
    def _gpu_list(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):  # INFERQ_GPUS=0 arrives decoded as JSON
            return [value]
        if isinstance(value, str):
            return [int(part) for part in re.split(r"[,\s]+", value.strip()) if part] if value.strip() else None
        return value

    @field_validator("engine_args", mode="before")
    @classmethod
    def _engine_args_json(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _served_name(self) -> WorkerSettings:
        if self.name is None:
            self.name = self.model.rstrip("/").rsplit("/", 1)[-1]
        if not MODEL_NAME.match(self.name):
            raise ValueError(f"name {self.name!r}: use letters, digits and . _ / - (at most 128)")
        return self


def worker_settings(**options: Any) -> WorkerSettings:
    """Settings from CLI options (None = not given) over INFERQ_* variables, or a one-line error that
    names each bad setting and never repeats its value (a Redis URL holds a password)."""
    try:
        return WorkerSettings(**{key: value for key, value in options.items() if value is not None})
    except ValidationError as exc:
        raise SystemExit(f"inferq worker: bad settings: {settings_problems(exc)}") from None
    except SettingsError as exc:  # a variable that is not the JSON its field needs; the message names the field
        raise SystemExit(f"inferq worker: bad settings: {exc}") from None
