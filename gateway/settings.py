"""The gateway's own settings (`INFERQ_GATEWAY_*`); Redis and the queue come from `QueueSettings`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INFERQ_GATEWAY_", extra="forbid")

    api_keys: str = Field("", description="comma-separated keys a client may send as `Authorization: Bearer <key>`")
    api_keys_file: Path | None = Field(None, description="a file of keys, one a line (# comments skipped)")

    def load_api_keys(self) -> frozenset[str]:
        """Every configured key; none means the gateway is open."""
        keys = {key.strip() for key in self.api_keys.split(",")}
        if self.api_keys_file is not None:
            lines = self.api_keys_file.read_text().splitlines()
            keys |= {line.strip() for line in lines if not line.strip().startswith("#")}
        return frozenset(key for key in keys if key)
