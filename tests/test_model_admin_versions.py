"""The config history in SQLite and in the real PostgreSQL: same behaviour on both."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from serve.models_admin.versions import ConfigVersions, VersionConflict, config_digest

V1 = {"models": [], "teams": [{"name": "dev"}]}
V2 = {"models": [{"name": "a"}], "teams": [{"name": "dev"}]}


@pytest.fixture(params=["sqlite", "postgresql"])
async def versions(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ConfigVersions]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/versions.db"
    else:
        url = request.getfixturevalue("postgres_url")
    # A table of its own per test: parallel runs on the shared database never collide.
    store = ConfigVersions(url, table=f"test_versions_{uuid.uuid4().hex[:12]}")
    yield store
    async with store._engine.begin() as conn:
        await conn.run_sync(store.table.drop)
    await store.aclose()


async def test_versions_append_in_order_and_read_back(versions: ConfigVersions) -> None:
    assert await versions.latest() is None
    first = await versions.append(0, V1, "alice", "seed")
    second = await versions.append(1, V2, "bob", "add a")
    assert (first.version, second.version) == (1, 2)
    latest = await versions.latest()
    assert latest is not None and latest.version == 2 and latest.config == V2
    assert latest.author == "bob" and latest.reason == "add a"
    assert latest.digest == config_digest(V2) != config_digest(V1)
    old = await versions.get(1)
    assert old is not None and old.config == V1 and old.created_at.tzinfo is not None
    assert [v.version for v in await versions.history()] == [2, 1]
    assert "config" not in latest.summary()


@pytest.mark.parametrize(
    ("base", "why"),
    [
        (1, "someone else already wrote version 2"),
        (0, "the history is not empty"),
        (7, "the base version does not exist"),
    ],
)
async def test_a_change_on_a_stale_base_conflicts(
    versions: ConfigVersions, base: int, why: str
) -> None:
    await versions.append(0, V1, "alice", "seed")
    await versions.append(1, V2, "bob", "add a")
    with pytest.raises(VersionConflict) as info:
        await versions.append(base, {"models": []}, "carol", why)
    assert info.value.latest == 2, why
    latest = await versions.latest()
    assert latest is not None and latest.config == V2  # nothing lost, nothing overwritten


async def test_version_of_finds_the_newest_version_with_a_config(versions: ConfigVersions) -> None:
    await versions.append(0, V1, "a", "seed")
    await versions.append(1, V2, "a", "change")
    await versions.append(2, V1, "a", "rollback")
    assert await versions.version_of(config_digest(V1)) == 3
    assert await versions.version_of(config_digest(V2)) == 2
    assert await versions.version_of(config_digest({"other": 1})) is None


async def test_discard_removes_only_the_latest_version(versions: ConfigVersions) -> None:
    await versions.append(0, V1, "a", "seed")
    await versions.append(1, V2, "a", "change")
    await versions.append(2, V1, "a", "again")
    assert await versions.discard(2) is False  # version 3 builds on it
    assert await versions.discard(3) is True
    latest = await versions.latest()
    assert latest is not None and latest.version == 2
