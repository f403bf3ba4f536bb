"""Teams and virtual keys in the platform database (SQLite or PostgreSQL).

SQLAlchemy Core over async drivers (aiosqlite, asyncpg): one code path for both
databases. Plaintext keys exist only in the return value of `create` and `rotate`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, get_args

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from serve.auth import api_keys
from serve.config import BootstrapKeyConfig, Role, TeamConfig

metadata = sa.MetaData()

teams_table = sa.Table(
    "raygate_teams",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("models", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

keys_table = sa.Table(
    "raygate_api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("team", sa.String(64), nullable=False, index=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("models", sa.Text, nullable=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    # serve.config.Role: "user", "auditor" or "model_owner".
    sa.Column("role", sa.String(16), nullable=True),
)

ROLES: tuple[str, ...] = get_args(Role)


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes; everything raygate writes is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    team: str
    name: str
    digest: str
    models: tuple[str, ...] | None
    source: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    role: str = "user"

    @property
    def prefix(self) -> str:
        return api_keys.display_prefix(self.id)

    def usable(self, now: datetime | None = None) -> bool:
        now = now or _now()
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > now

    def public(self) -> dict[str, Any]:
        """What the admin API shows: never the digest."""
        return {
            "id": self.id,
            "object": "api_key",
            "prefix": self.prefix,
            "team": self.team,
            "name": self.name,
            "models": list(self.models) if self.models is not None else None,
            "source": self.source,
            "created_at": int(self.created_at.timestamp()),
            "expires_at": int(self.expires_at.timestamp()) if self.expires_at else None,
            "revoked": self.revoked_at is not None,
            "role": self.role,
        }


def _record(row: Any) -> KeyRecord:
    created = _aware(row.created_at)
    assert created is not None
    return KeyRecord(
        id=row.id,
        team=row.team,
        name=row.name,
        digest=row.digest,
        models=tuple(json.loads(row.models)) if row.models is not None else None,
        source=row.source,
        created_at=created,
        expires_at=_aware(row.expires_at),
        revoked_at=_aware(row.revoked_at),
        role=row.role or "user",
    )


def _add_missing_columns(conn: sa.Connection) -> None:
    """Columns added after a table was first created (create_all only makes new tables)."""
    present = {c["name"] for c in sa.inspect(conn).get_columns(keys_table.name)}
    if "role" not in present:
        conn.execute(sa.text(f"ALTER TABLE {keys_table.name} ADD COLUMN role VARCHAR(16)"))


class KeyStore:
    def __init__(self, url: str) -> None:
        self._engine: AsyncEngine = create_async_engine(url, pool_pre_ping=True)
        self._dialect = self._engine.dialect.name

    async def init(
        self, teams: Sequence[TeamConfig], bootstrap: Sequence[tuple[BootstrapKeyConfig, str]]
    ) -> None:
        """Create tables and sync config teams and bootstrap keys (idempotent, replica-safe)."""
        async with self._engine.begin() as conn:
            if self._dialect == "postgresql":
                # Replicas start together: serialise DDL and the bootstrap upserts.
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(727001)"))
            await conn.run_sync(metadata.create_all)
            await conn.run_sync(_add_missing_columns)
            now = _now()
            for team in teams:
                await self._upsert(
                    conn,
                    teams_table,
                    {"name": team.name, "models": json.dumps(team.models), "updated_at": now},
                    ["name"],
                )
            for key_config, plaintext in bootstrap:
                await self._upsert(
                    conn,
                    keys_table,
                    {
                        "id": api_keys.key_id_of(plaintext),
                        "team": key_config.team,
                        "name": key_config.name,
                        "digest": api_keys.digest(plaintext),
                        "models": json.dumps(key_config.models)
                        if key_config.models is not None
                        else None,
                        "source": "config",
                        "created_at": now,
                        "expires_at": key_config.expires_at,
                        "revoked_at": None,
                        "role": key_config.role,
                    },
                    ["id"],
                    keep=["created_at"],
                )

    async def _upsert(
        self,
        conn: AsyncConnection,
        table: sa.Table,
        values: dict[str, Any],
        keys: list[str],
        keep: Sequence[str] = (),
    ) -> None:
        dialect: Any = postgresql if self._dialect == "postgresql" else sqlite
        stmt = dialect.insert(table).values(**values)
        updates = {k: stmt.excluded[k] for k in values if k not in keys and k not in keep}
        await conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=updates))

    async def find(self, key_id: str) -> KeyRecord | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(sa.select(keys_table).where(keys_table.c.id == key_id))
            ).first()
        return _record(row) if row is not None else None

    async def create(
        self,
        team: str,
        name: str,
        models: Sequence[str] | None = None,
        expires_at: datetime | None = None,
        role: str = "user",
    ) -> tuple[KeyRecord, str]:
        key_id, plaintext = api_keys.generate()
        record = KeyRecord(
            id=key_id,
            team=team,
            name=name,
            digest=api_keys.digest(plaintext),
            models=tuple(models) if models is not None else None,
            source="admin",
            created_at=_now(),
            expires_at=expires_at,
            revoked_at=None,
            role=role,
        )
        async with self._engine.begin() as conn:
            await conn.execute(
                keys_table.insert().values(
                    id=record.id,
                    team=record.team,
                    name=record.name,
                    digest=record.digest,
                    models=json.dumps(record.models) if record.models is not None else None,
                    source=record.source,
                    created_at=record.created_at,
                    expires_at=record.expires_at,
                    revoked_at=None,
                    role=record.role,
                )
            )
        return record, plaintext

    async def revoke(self, key_id: str) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                keys_table.update()
                .where(keys_table.c.id == key_id, keys_table.c.revoked_at.is_(None))
                .values(revoked_at=_now())
            )
        return bool(result.rowcount)

    async def rotate(self, key_id: str) -> tuple[KeyRecord, str] | None:
        """Issue a new key with the same team, name, models and expiry; revoke the old one."""
        old = await self.find(key_id)
        if old is None or not old.usable():
            return None
        if not await self.revoke(key_id):
            return None  # a concurrent rotate or delete won
        return await self.create(old.team, old.name, old.models, old.expires_at, old.role)

    async def list(self, team: str | None = None) -> list[KeyRecord]:
        query = sa.select(keys_table).order_by(keys_table.c.created_at)
        if team is not None:
            query = query.where(keys_table.c.team == team)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_record(row) for row in rows]

    async def ping(self) -> bool:
        try:
            async with self._engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except Exception:
            return False
        return True

    async def aclose(self) -> None:
        await self._engine.dispose()
