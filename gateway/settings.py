"""The gateway's own settings (`INFERQ_GATEWAY_*`); Redis and the queue come from `QueueSettings`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from batch.runner import DEFAULT_WINDOW
from gateway.tenants import KeyTable, Limits, key_table


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INFERQ_GATEWAY_", extra="forbid")

    api_keys: str = Field("", description="comma-separated keys a client may send as `Authorization: Bearer <key>`")
    api_keys_file: Path | None = Field(
        None, description="one key a line (# comments skipped), or a .toml file of tenants (gateway/tenants.py)"
    )
    tenant_max_jobs: int | None = Field(
        64, ge=1, description="with keys: jobs a tenant may have queued or running at once, unless its entry says"
    )
    tenant_max_queued: int | None = Field(
        None, ge=1, description="with keys: of those, jobs not started yet, unless its entry says (none: no cap)"
    )
    tenant_top_priority: int | None = Field(
        None,
        ge=0,
        le=9,
        description="with keys: the most urgent priority a tenant's job may ask for, unless its "
        "entry says (none: any; admins always any)",
    )
    max_body_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="largest request body; a larger one is a 413, never read whole"
    )
    body_timeout_s: float = Field(30.0, gt=0, description="time a client has to send its whole body (408 after)")
    limit_concurrency: int = Field(
        2048, ge=1, description="uvicorn: connections and requests at once; past it new ones get a 503"
    )
    timeout_keep_alive_s: int = Field(5, ge=1, description="uvicorn: an idle keep-alive connection is closed after")
    files_url: str = Field(
        "inferq-files", description="where Batch API files live: a directory (file:// or a path) all gateways share"
    )
    max_file_bytes: int = Field(
        200 * 1024 * 1024, ge=1024, description="largest file `POST /v1/files` takes (held in memory while it arrives)"
    )
    batch_window: int = Field(DEFAULT_WINDOW, ge=1, description="a Batch API batch's jobs in flight at once")
    batch_max_drives: int = Field(
        4, ge=1, description="batches this gateway drives at once (each holds its input in memory); more wait"
    )
    tenant_max_batches: int = Field(
        8, ge=1, description="a tenant's Batch API batches not finished yet at once (a create past it is a 429)"
    )
    batch_lease_s: float = Field(
        15.0, ge=1, description="a gateway that stops renewing a batch's lease this long gives the batch to another"
    )
    batch_scan_s: float = Field(1.0, gt=0, description="how often a gateway looks for batches nobody drives")
    retry_after_s: int = Field(2, ge=1, description="the Retry-After of a 429 (a tenant at its quota, a full queue)")

    def key_table(self) -> KeyTable:
        keys = {key.strip() for key in self.api_keys.split(",") if key.strip()}
        limits = Limits(
            max_jobs=self.tenant_max_jobs, max_queued=self.tenant_max_queued, top_priority=self.tenant_top_priority
        )
        table = key_table(keys, self.api_keys_file, limits)
        if table.is_open and (self.api_keys.strip() or self.api_keys_file is not None):
            # A keys setting that holds no key (a secret mounted empty, a file of comments) would open the gateway
            # to everyone, as an admin: an open gateway is one with neither setting.
            named = f"INFERQ_GATEWAY_API_KEYS_FILE ({self.api_keys_file})" if self.api_keys_file else ""
            raise ValueError(f"{named or 'INFERQ_GATEWAY_API_KEYS'} holds no key; unset it to run an open gateway")
        return table
