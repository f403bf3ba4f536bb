"""Versioned platform config in the platform database (SQLite or PostgreSQL).

Each change to the platform config through the admin API is a new row
``(version, config, digest, created_at, author, reason)``. A change is *based on* the
version its author read; inserting ``base + 1`` fails on the primary key when someone
else already inserted it, so two notebooks never lose a write (`VersionConflict`).
SQLAlchemy Core over async drivers, one code path for both databases (as serve/keystore.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = ["ConfigVersion", "ConfigVersions", "VersionConflict", "config_digest"]


def canonical_json(config: Mapping[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def config_digest(config: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a platform config (``model_dump(mode="json")``)."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()


class VersionConflict(Exception):
    """The version a change was based on is no longer the latest."""

    def __init__(self, base: int, latest: int) -> None:
        super().__init__(
            f"config changed: the change is based on version {base}, latest is {latest}"
        )
        self.base = base
        self.latest = latest


@dataclass(frozen=True, slots=True)
class ConfigVersion:
    version: int
    config: Mapping[str, Any]
    digest: str
    created_at: datetime
    author: str
    reason: str

    def summary(self) -> dict[str, Any]:
        """What the admin API lists: everything but the config itself."""
        return {
            "version": self.version,
            "digest": self.digest,
            "created_at": int(self.created_at.timestamp()),
            "author": self.author,
            "reason": self.reason,
        }


def _table(name: str) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False, index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )


def _row(row: Any) -> ConfigVersion:
    created: datetime = row.created_at
    if created.tzinfo is None:  # SQLite returns naive datetimes; we write UTC
        created = created.replace(tzinfo=UTC)
    return ConfigVersion(
        version=int(row.version),
        config=json.loads(row.config),
        digest=row.digest,
        created_at=created,
        author=row.author,
        reason=row.reason,
    )


class ConfigVersions:
    def __init__(self, url: str, table: str = "raygate_config_versions") -> None:
        self._engine: AsyncEngine = create_async_engine(url, pool_pre_ping=True)
        self.table = _table(table)
        self._ready = False

    async def init(self) -> None:
        if self._ready:
            return
        async with self._engine.begin() as conn:
            if self._engine.dialect.name == "postgresql":  # replicas start together
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(727002)"))
            await conn.run_sync(self.table.metadata.create_all)
        self._ready = True

    async def latest(self) -> ConfigVersion | None:
        await self.init()
        query = sa.select(self.table).order_by(self.table.c.version.desc()).limit(1)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _row(row) if row is not None else None

    async def get(self, version: int) -> ConfigVersion | None:
        await self.init()
        query = sa.select(self.table).where(self.table.c.version == version)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _row(row) if row is not None else None

    async def version_of(self, digest: str) -> int | None:
        """The newest version whose config has this digest (what a replica is running)."""
        await self.init()
        query = sa.select(sa.func.max(self.table.c.version)).where(self.table.c.digest == digest)
        async with self._engine.connect() as conn:
            value = (await conn.execute(query)).scalar()
        return int(value) if value is not None else None

    async def history(self, limit: int = 20) -> list[ConfigVersion]:
        """Newest first."""
        await self.init()
        query = sa.select(self.table).order_by(self.table.c.version.desc()).limit(limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_row(r) for r in rows]

    async def append(
        self, base: int, config: Mapping[str, Any], author: str, reason: str
    ) -> ConfigVersion:
        """Insert version ``base + 1``; `VersionConflict` when it already exists.

        ``base`` 0 is the first version (the table is empty)."""
        await self.init()
        record = ConfigVersion(
            version=base + 1,
            config=dict(config),
            digest=config_digest(config),
            created_at=datetime.now(UTC),
            author=author,
            reason=reason,
        )
        try:
            async with self._engine.begin() as conn:
                if base > 0:
                    exists = await conn.execute(
                        sa.select(self.table.c.version).where(self.table.c.version == base)
                    )
                    if exists.first() is None:
                        latest = await self._latest_number(conn)
                        raise VersionConflict(base, latest)
                await conn.execute(
                    self.table.insert().values(
                        version=record.version,
                        config=canonical_json(record.config),
                        digest=record.digest,
                        created_at=record.created_at,
                        author=author,
                        reason=reason,
                    )
                )
        except IntegrityError:
            newest = await self.latest()
            raise VersionConflict(base, newest.version if newest else 0) from None
        return record

    async def discard(self, version: int) -> bool:
        """Delete ``version`` if it is still the latest (a change whose redeploy failed)."""
        await self.init()
        newer = sa.select(self.table.c.version).where(self.table.c.version > version).exists()
        async with self._engine.begin() as conn:
            result = await conn.execute(
                self.table.delete().where(self.table.c.version == version, ~newer)
            )
        return bool(result.rowcount)

    async def _latest_number(self, conn: Any) -> int:
        value = (await conn.execute(sa.select(sa.func.max(self.table.c.version)))).scalar()
        return int(value) if value is not None else 0

    async def aclose(self) -> None:
        await self._engine.dispose()
