"""Who is calling: API keys, the tenants they belong to, and what each tenant may do.

Two ways to configure keys (`GatewaySettings`):

- `INFERQ_GATEWAY_API_KEYS=key-a,key-b` (or a keys file of one key a line): each key is a tenant of its
  own, named `key-<first 12 hex digits of the key's SHA-256>` (stable across replicas, and the name does
  not give the key away);
- a keys file ending in `.toml`: tenants by name, each with its keys, an optional admin flag and limits,
  and `[defaults]` for the limits of tenants that set none:

      [defaults]
      max_jobs = 64          # jobs queued or running at once
      max_queued = 32        # of those, jobs not started yet

      top_priority = 3       # no job more urgent than 3 (0 is the most urgent): a 400 on `priority`

      [tenants.team-a]
      keys = ["sk-team-a-1", "sk-team-a-2"]
      max_jobs = 16

      [tenants.ops]
      keys = ["sk-ops"]
      admin = true

A tenant sees, streams and cancels only its own jobs and responses; an admin sees everything, and only
admins see which worker and host ran a job. With no key configured the gateway is open: every caller is
the one anonymous admin, as on a developer's machine.
"""

from __future__ import annotations

import hashlib
import hmac
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engines.errors import InvalidRequest
from tasks.app import DEFAULT_PRIORITY
from tasks.schemas import MODEL_NAME, OwnerQuota

ANONYMOUS = "anonymous"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Limits(_Strict):
    max_jobs: int | None = Field(None, ge=1, description="jobs queued or running at once")
    max_queued: int | None = Field(None, ge=1, description="of those, jobs not started yet")
    top_priority: int | None = Field(
        None, ge=0, le=9, description="the most urgent priority a job may ask for (0 is the most urgent)"
    )


class TenantEntry(Limits):
    keys: list[str] = Field(min_length=1)
    admin: bool = False

    @field_validator("keys")
    @classmethod
    def _no_blank_keys(cls, keys: list[str]) -> list[str]:
        if any(not key.strip() for key in keys):
            raise ValueError("a key may not be blank")
        return keys


class KeysFile(_Strict):
    defaults: Limits = Field(default_factory=Limits)
    tenants: dict[str, TenantEntry] = Field(min_length=1)

    @field_validator("tenants")
    @classmethod
    def _tenant_names(cls, tenants: dict[str, TenantEntry]) -> dict[str, TenantEntry]:
        for name in tenants:
            if not MODEL_NAME.match(name):  # the same alphabet as model names: it goes into Redis keys
                raise ValueError(f"tenant {name!r}: use letters, digits and . _ / - (at most 128)")
        return tenants


class Tenant(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    admin: bool = False
    quota: OwnerQuota | None = None
    top_priority: int = 0  # an admin's is always 0

    def may_see(self, owner: str | None) -> bool:
        """Whether a job of `owner` exists for this tenant (anyone else gets the 404 of a job that never was)."""
        return self.admin or owner == self.name

    def priority(self, asked: int | None) -> int | None:
        """The priority a job of this tenant runs at: what it asked for, within its `top_priority`; a request
        that asks for none gets the default, or the tenant's top where that is less urgent."""
        if asked is None:
            return None if self.top_priority <= DEFAULT_PRIORITY else self.top_priority
        if asked < self.top_priority:
            # Refused, not lowered: a tenant that jumps the queue would otherwise crowd every other tenant's jobs
            # out of the engines' scheduling (vLLM's priority scheduler preempts for it).
            raise InvalidRequest(
                f"this key may ask for priorities {self.top_priority} to 9 (0 is the most urgent)", field="priority"
            )
        return asked


OPEN = Tenant(name=ANONYMOUS, admin=True)


class KeyTable:
    def __init__(self, tenants_by_key: dict[str, Tenant]) -> None:
        self._tenants_by_key = tenants_by_key

    @property
    def is_open(self) -> bool:
        return not self._tenants_by_key

    def tenant_of(self, authorization: str) -> Tenant | None:
        """The tenant an `Authorization: Bearer <key>` header names; None for a missing or unknown key."""
        if self.is_open:
            return OPEN
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return None
        found = None
        # compare_digest against every key: how long the search takes must not tell a prefix of a key.
        for key, tenant in self._tenants_by_key.items():
            if hmac.compare_digest(given.encode(), key.encode()):
                found = tenant
        return found


def key_table(keys: set[str], keys_file: Path | None, default_limits: Limits) -> KeyTable:
    """`keys` (each its own tenant, with `default_limits`) plus the tenants of `keys_file`."""
    tenants_by_key: dict[str, Tenant] = {}
    top = default_limits.top_priority or 0
    for key in keys:
        tenants_by_key[key] = Tenant(name=bare_key_tenant(key), quota=_quota(default_limits), top_priority=top)
    if keys_file is not None and keys_file.suffix == ".toml":
        tenants_by_key.update(_toml_tenants(keys_file, default_limits))
    elif keys_file is not None:
        lines = (line.strip() for line in keys_file.read_text().splitlines())
        for key in (line for line in lines if line and not line.startswith("#")):
            tenants_by_key[key] = Tenant(name=bare_key_tenant(key), quota=_quota(default_limits), top_priority=top)
    return KeyTable(tenants_by_key)


def _toml_tenants(path: Path, default_limits: Limits) -> dict[str, Tenant]:
    try:
        parsed = KeysFile.model_validate(tomllib.loads(path.read_text()))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not TOML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"{path}: {where}: {first['msg']}") from None
    defaults = Limits(
        max_jobs=parsed.defaults.max_jobs or default_limits.max_jobs,
        max_queued=parsed.defaults.max_queued or default_limits.max_queued,
        top_priority=_either(parsed.defaults.top_priority, default_limits.top_priority),
    )
    tenants: dict[str, Tenant] = {}
    for name, entry in parsed.tenants.items():
        limits = Limits(
            max_jobs=entry.max_jobs or defaults.max_jobs,
            max_queued=entry.max_queued or defaults.max_queued,
            top_priority=_either(entry.top_priority, defaults.top_priority),
        )
        top = 0 if entry.admin else limits.top_priority or 0
        tenant = Tenant(name=name, admin=entry.admin, quota=_quota(limits), top_priority=top)
        for key in entry.keys:
            if key in tenants:
                raise ValueError(f"{path}: a key is listed for both {tenants[key].name!r} and {name!r}")
            tenants[key] = tenant
    return tenants


def _either(given: int | None, fallback: int | None) -> int | None:
    """A limit where 0 is a value, not an absence (top_priority = 0 lifts a default)."""
    return fallback if given is None else given


def bare_key_tenant(key: str) -> str:
    """The tenant name of a key configured on its own: stable, and it does not give the key away."""
    return f"key-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def _quota(limits: Limits) -> OwnerQuota | None:
    quota = OwnerQuota(max_jobs=limits.max_jobs, max_queued=limits.max_queued)
    return quota if quota.limits_anything else None
