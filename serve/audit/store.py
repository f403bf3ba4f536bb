"""The audit log in the platform database (SQLite or PostgreSQL), SQLAlchemy Core.

One row per request (`AuditRow`), keyed on the request id so a replayed batch never
duplicates (ON CONFLICT DO NOTHING on both dialects). Reads are newest first with keyset
pagination; retention deletes by team; the usage report aggregates in SQL and computes
latency percentiles in Python from a per-group capped sample.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from serve.audit.crypto import PromptCipher
from serve.audit.cursor import decode_cursor, encode_cursor
from serve.audit.policy import AuditPolicy
from serve.audit.row import AuditRow
from serve.audit.usage import InventoryRow, UsageRow, percentile

__all__ = ["DEFAULT_TABLE", "AuditPage", "AuditStore", "audit_table"]

DEFAULT_TABLE = "raygate_audit"
ERROR_OUTCOMES = ("error", "rejected")
CACHE_HITS = ("hit", "semantic-hit")
_DDL_LOCK = 727003
_PURGE_LOCK = 727004


def audit_table(name: str = DEFAULT_TABLE, metadata: sa.MetaData | None = None) -> sa.Table:
    text = sa.String()
    return sa.Table(
        name,
        metadata if metadata is not None else sa.MetaData(),
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("team", sa.String(64), nullable=True),
        sa.Column("key_id", sa.String(64), nullable=True),
        sa.Column("subject", text, nullable=True),
        sa.Column("project", text, nullable=True),
        sa.Column("endpoint", sa.String(16), nullable=False),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("model_requested", text, nullable=True),
        sa.Column("model_served", text, nullable=True),
        sa.Column("provider", sa.String(32), nullable=True),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error_code", text, nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("ttft_ms", sa.Float, nullable=True),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("cached_input_tokens", sa.BigInteger, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("cache", sa.String(16), nullable=True),
        sa.Column("fallback_from", text, nullable=True),
        sa.Column("finish_reason", sa.String(32), nullable=True),
        sa.Column("guardrails", sa.JSON, nullable=False),
        sa.Column("prompt_policy", sa.String(8), nullable=False),
        sa.Column("prompt", sa.Text, nullable=True),
        sa.Column("response", sa.Text, nullable=True),
        sa.Column("key_version", sa.String(16), nullable=True),
        sa.Column("trace_id", sa.String(32), nullable=True),
        sa.Index(f"ix_{name}_started_at", "started_at", "request_id"),
        sa.Index(f"ix_{name}_team", "team", "started_at"),
    )


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class AuditPage:
    rows: list[AuditRow]
    next_cursor: str | None  # None on the last page


class AuditStore:
    """Implements `AuditSink` for the outbox, and the reads of the admin API."""

    def __init__(
        self,
        url: str,
        policy: AuditPolicy | None = None,
        cipher: PromptCipher | None = None,
        *,
        table: str = DEFAULT_TABLE,
    ) -> None:
        self._engine: AsyncEngine = create_async_engine(url, pool_pre_ping=True)
        self._dialect = self._engine.dialect.name
        self.policy = policy or AuditPolicy()
        self.cipher = cipher
        self._metadata = sa.MetaData()
        self.table = audit_table(table, self._metadata)

    async def init(self) -> None:
        """Create the table and its indexes (idempotent, replica-safe)."""
        async with self._engine.begin() as conn:
            if self._dialect == "postgresql":
                await conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({_DDL_LOCK})"))
            await conn.run_sync(self._metadata.create_all)

    # -- writes -------------------------------------------------------------------------

    async def insert_many(self, rows: Sequence[AuditRow]) -> int:
        if not rows:
            return 0
        dialect: Any = postgresql if self._dialect == "postgresql" else sqlite
        stmt = (
            dialect.insert(self.table)
            .on_conflict_do_nothing(index_elements=["request_id"])
            .returning(self.table.c.request_id)
        )
        async with self._engine.begin() as conn:
            result = await conn.execute(stmt, [row.as_dict() for row in rows])
            return len(result.all())

    async def purge(self, now: datetime) -> int | None:
        """Delete rows older than their team's retention. Idempotent; on PostgreSQL one
        replica per round does it (None: another one holds the purge lock)."""
        now = _utc(now)
        t = self.table
        explicit = {
            team: days.retention_days
            for team, days in self.policy.teams.items()
            if days.retention_days is not None
        }
        deleted = 0
        async with self._engine.begin() as conn:
            if self._dialect == "postgresql":
                locked = await conn.scalar(
                    sa.text(f"SELECT pg_try_advisory_xact_lock({_PURGE_LOCK})")
                )
                if not locked:
                    return None
            for team, days in explicit.items():
                cutoff = now - timedelta(days=days)
                result = await conn.execute(
                    t.delete().where(t.c.team == team, t.c.started_at < cutoff)
                )
                deleted += result.rowcount
            others = sa.or_(t.c.team.is_(None), t.c.team.not_in(list(explicit)))
            cutoff = now - timedelta(days=self.policy.retention_days)
            result = await conn.execute(t.delete().where(others, t.c.started_at < cutoff))
            deleted += result.rowcount
        return deleted

    # -- reads --------------------------------------------------------------------------

    def _window(
        self, since: datetime | None, until: datetime | None, team: str | None
    ) -> list[sa.ColumnElement[bool]]:
        t = self.table
        where: list[sa.ColumnElement[bool]] = []
        if since is not None:
            where.append(t.c.started_at >= _utc(since))
        if until is not None:
            where.append(t.c.started_at < _utc(until))
        if team is not None:
            where.append(t.c.team == team)
        return where

    async def query(
        self,
        team: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        model: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> AuditPage:
        """Newest first; `model` matches the requested or the serving model; `since` is
        inclusive, `until` exclusive. Pass a page's `next_cursor` for the next one."""
        t = self.table
        where = self._window(since, until, team)
        if model is not None:
            where.append(sa.or_(t.c.model_requested == model, t.c.model_served == model))
        if cursor is not None:
            at, request_id = decode_cursor(cursor)
            where.append(
                sa.or_(
                    t.c.started_at < at,
                    sa.and_(t.c.started_at == at, t.c.request_id < request_id),
                )
            )
        stmt = (
            sa.select(t)
            .where(*where)
            .order_by(t.c.started_at.desc(), t.c.request_id.desc())
            .limit(limit + 1)
        )
        async with self._engine.connect() as conn:
            found = (await conn.execute(stmt)).mappings().all()
        rows = [AuditRow.from_mapping(dict(r)) for r in found[:limit]]
        more = len(found) > limit
        last = rows[-1] if rows else None
        next_cursor = encode_cursor(last.started_at, last.request_id) if more and last else None
        return AuditPage(rows, next_cursor)

    def _day(self) -> sa.ColumnElement[str]:
        column = self.table.c.started_at
        if self._dialect == "postgresql":
            return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD")
        return sa.func.date(column)  # SQLite keeps UTC wall time as text

    async def usage(
        self, since: datetime, until: datetime, team: str | None = None
    ) -> list[UsageRow]:
        """Per team x model (the one that answered, else the one asked for) x UTC day."""
        t = self.table
        day = self._day().label("day")
        model = sa.func.coalesce(t.c.model_served, t.c.model_requested).label("model")
        where = self._window(since, until, team)

        def flag(condition: sa.ColumnElement[bool]) -> Any:
            return sa.func.sum(sa.case((condition, 1), else_=0))

        totals = (
            sa.select(
                t.c.team,
                model,
                day,
                sa.func.count().label("requests"),
                sa.func.sum(t.c.input_tokens).label("input_tokens"),
                sa.func.sum(t.c.output_tokens).label("output_tokens"),
                sa.func.sum(t.c.cost_usd).label("cost_usd"),
                flag(t.c.outcome.in_(ERROR_OUTCOMES)).label("errors"),
                flag(t.c.cache.in_(CACHE_HITS)).label("cache_hits"),
            )
            .where(*where)
            .group_by(t.c.team, model, day)
        )
        # Latencies of answered requests, at most `percentile_row_cap` per group (ordered
        # by request id, which is random, so the cap keeps an unbiased sample).
        rank = (
            sa.func.row_number()
            .over(partition_by=(t.c.team, model, day), order_by=t.c.request_id)
            .label("rank")
        )
        ranked = (
            sa.select(t.c.team, model, day, t.c.latency_ms, rank)
            .where(*where, t.c.outcome == "ok")
            .subquery()
        )
        samples = sa.select(ranked.c.team, ranked.c.model, ranked.c.day, ranked.c.latency_ms).where(
            ranked.c.rank <= self.policy.percentile_row_cap
        )
        async with self._engine.connect() as conn:
            groups = (await conn.execute(totals)).all()
            latencies: dict[tuple[Any, Any, str], list[float]] = defaultdict(list)
            for row in await conn.execute(samples):
                latencies[(row.team, row.model, str(row.day))].append(float(row.latency_ms))
        report = []
        for g in groups:
            values = latencies.get((g.team, g.model, str(g.day)), [])
            report.append(
                UsageRow(
                    team=g.team,
                    model=g.model,
                    day=str(g.day),
                    requests=int(g.requests),
                    input_tokens=int(g.input_tokens or 0),
                    output_tokens=int(g.output_tokens or 0),
                    cost_usd=float(g.cost_usd or 0.0),
                    errors=int(g.errors or 0),
                    cache_hits=int(g.cache_hits or 0),
                    p50_ms=percentile(values, 0.50),
                    p95_ms=percentile(values, 0.95),
                    latency_samples=len(values),
                )
            )
        report.sort(key=lambda r: (r.day, r.team or "", r.model or ""))
        return report

    async def inventory(
        self,
        team: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[InventoryRow]:
        """Which teams and keys used which model, first and last seen, how often."""
        t = self.table
        stmt = (
            sa.select(
                t.c.team,
                t.c.key_id,
                t.c.model_requested,
                t.c.model_served,
                sa.func.min(t.c.started_at).label("first_seen"),
                sa.func.max(t.c.started_at).label("last_seen"),
                sa.func.count().label("requests"),
            )
            .where(t.c.team.is_not(None), *self._window(since, until, team))
            .group_by(t.c.team, t.c.key_id, t.c.model_requested, t.c.model_served)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        out = [
            InventoryRow(
                team=r.team,
                key_id=r.key_id,
                model_requested=r.model_requested,
                model_served=r.model_served,
                first_seen=_aware(r.first_seen),
                last_seen=_aware(r.last_seen),
                requests=int(r.requests),
            )
            for r in rows
        ]
        out.sort(key=lambda r: (r.team, r.model_requested or "", r.key_id or ""))
        return out

    async def ping(self) -> bool:
        try:
            async with self._engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except Exception:
            return False
        return True

    async def drop(self) -> None:
        """Drop the table (tests and teardown of per-test tables only)."""
        async with self._engine.begin() as conn:
            await conn.run_sync(self._metadata.drop_all)

    async def aclose(self) -> None:
        await self._engine.dispose()


def _aware(value: datetime | str) -> datetime:
    # SQLite may hand aggregates (min/max) back as text; everything stored is UTC.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
