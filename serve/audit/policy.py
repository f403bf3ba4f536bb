"""Audit policy: what is kept of each request, for how long, and how it reaches the store.

These models stand alone (they do not import `serve.config`) so the platform config can
embed them as they are. The gateway applies `prompt_storage` before it hands a record to
the audit outbox; the outbox encrypts `full` prompts and responses with `encryption_key`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from serve.settings import SECRET_REF_PATTERN

__all__ = ["AuditPolicy", "OutboxPolicy", "PromptStorage", "TeamAuditPolicy"]

PromptStorage = Literal["none", "masked", "full"]
SecretRef = Annotated[str, StringConstraints(pattern=SECRET_REF_PATTERN)]
TeamName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TeamAuditPolicy(_Frozen):
    """One team's override; a field left out takes the platform default."""

    prompt_storage: PromptStorage | None = None
    retention_days: int | None = Field(None, ge=1, le=3650)


class OutboxPolicy(_Frozen):
    """The local spool between the response path and the database (see docs/audit.md)."""

    # Expanded by the caller (``~``); each process spools in its own sub-directory.
    # None: beside a SQLite database (``<db>.audit-spool``), else
    # ``$RAYGATE_HOME/audit-spool/<hash of the database URL>``.
    spool_dir: str | None = None
    batch_size: int = Field(500, ge=1, le=10_000)
    flush_interval_s: float = Field(1.0, gt=0, le=300)
    # Beyond this many spooled bytes new records are dropped (counted and logged).
    max_spool_bytes: int = Field(256 * 1024 * 1024, ge=64 * 1024)
    # Back-off after a failed shipment, doubling up to the maximum.
    retry_initial_s: float = Field(0.5, gt=0)
    retry_max_s: float = Field(30.0, gt=0)
    # `aclose()` waits at most this long for the spool to drain.
    close_timeout_s: float = Field(5.0, ge=0, le=120)


class AuditPolicy(_Frozen):
    prompt_storage: PromptStorage = "masked"
    retention_days: int = Field(90, ge=1, le=3650)
    teams: Mapping[TeamName, TeamAuditPolicy] = Field(default_factory=dict)
    # base64 of 32 random bytes, by reference only; required when any team stores `full`.
    encryption_key: SecretRef | None = None
    # Keys that still decrypt older rows after a rotation (never used to encrypt).
    previous_encryption_keys: tuple[SecretRef, ...] = ()
    outbox: OutboxPolicy = OutboxPolicy()
    purge_interval_s: float = Field(3600.0, ge=1)
    # Per (team, model, day) group, at most this many latencies feed p50/p95.
    percentile_row_cap: int = Field(10_000, ge=10, le=1_000_000)

    @model_validator(mode="after")
    def _key_for_full(self) -> AuditPolicy:
        if self.encryption_key is None and "full" in self.storages():
            raise ValueError("audit.encryption_key is required when any team stores full prompts")
        return self

    def storages(self) -> set[PromptStorage]:
        chosen: set[PromptStorage] = {self.prompt_storage}
        chosen |= {t.prompt_storage for t in self.teams.values() if t.prompt_storage is not None}
        return chosen

    def prompt_storage_for(self, team: str | None) -> PromptStorage:
        override = self.teams.get(team) if team is not None else None
        if override is not None and override.prompt_storage is not None:
            return override.prompt_storage
        return self.prompt_storage

    def retention_days_for(self, team: str | None) -> int:
        override = self.teams.get(team) if team is not None else None
        if override is not None and override.retention_days is not None:
            return override.retention_days
        return self.retention_days
