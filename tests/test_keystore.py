"""Keys and teams in SQLite and in the real PostgreSQL: same behaviour on both."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from serve.auth import api_keys
from serve.auth.authenticator import Authenticator
from serve.config import BootstrapKeyConfig, TeamConfig, parse_platform_config
from serve.errors import AuthenticationFailed
from serve.keystore import KeyStore, keys_table

TEAMS = [TeamConfig(name="alpha"), TeamConfig(name="beta", models=("m1",))]


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KeyStore]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/keys.db"
    else:
        url = request.getfixturevalue("postgres_url")
    store = KeyStore(url)
    await store.init(TEAMS, [])
    if request.param == "postgresql":  # isolate from earlier runs on the shared database
        async with store._engine.begin() as conn:
            await conn.execute(sa.delete(keys_table))
    yield store
    await store.aclose()


async def test_created_key_is_stored_only_as_hash(store: KeyStore) -> None:
    record, plaintext = await store.create("alpha", "svc", ["m1"])
    assert plaintext.startswith(f"sk-rg-{record.id}-")
    found = await store.find(record.id)
    assert found is not None and found.digest == api_keys.digest(plaintext)
    assert plaintext not in str(found) and plaintext not in str(found.public())
    assert "digest" not in found.public()
    assert found.models == ("m1",) and found.usable()


async def test_revoke_and_rotate(store: KeyStore) -> None:
    record, _ = await store.create("alpha", "svc")
    rotated = await store.rotate(record.id)
    assert rotated is not None
    new, new_plain = rotated
    assert new.id != record.id and new.team == "alpha" and new.name == "svc"
    old = await store.find(record.id)
    assert old is not None and not old.usable()
    assert await store.rotate(record.id) is None  # already revoked
    assert await store.revoke(new.id) is True
    assert await store.revoke(new.id) is False
    assert api_keys.matches(new_plain, new.digest)


async def test_bootstrap_keys_are_idempotent_and_follow_the_environment(store: KeyStore) -> None:
    config = BootstrapKeyConfig(team="alpha", name="boot", key="env:X")
    value = "boot-" + uuid.uuid4().hex
    await store.init(TEAMS, [(config, value)])
    await store.init(TEAMS, [(config, value)])
    keys = [k for k in await store.list("alpha") if k.name == "boot"]
    assert len(keys) == 1 and keys[0].source == "config"
    assert api_keys.matches(value, keys[0].digest)


async def test_expired_key_is_refused(store: KeyStore) -> None:
    record, plaintext = await store.create(
        "alpha", "old", expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    config = parse_platform_config({"teams": [{"name": "alpha"}]})
    auth = Authenticator(config, store)
    with pytest.raises(AuthenticationFailed, match="expired"):
        await auth.authenticate(f"Bearer {plaintext}")
    assert not record.usable()


async def test_authenticator_caches_and_forgets(store: KeyStore) -> None:
    config = parse_platform_config({"teams": [{"name": "alpha"}], "auth": {"key_cache_ttl_s": 60}})
    now = [1000.0]
    auth = Authenticator(config, store, clock=lambda: now[0])
    record, plaintext = await store.create("alpha", "svc")
    principal = await auth.authenticate(f"Bearer {plaintext}")
    assert principal.team == "alpha" and principal.key_id == record.id
    await store.revoke(record.id)
    # Cached on this replica until the TTL passes (or forget() on the revoking replica).
    assert (await auth.authenticate(f"Bearer {plaintext}")).key_id == record.id
    now[0] += 61
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate(f"Bearer {plaintext}")


async def test_wrong_secret_with_a_real_id_is_refused(store: KeyStore) -> None:
    config = parse_platform_config({"teams": [{"name": "alpha"}]})
    auth = Authenticator(config, store)
    _, plaintext = await store.create("alpha", "svc")
    forged = plaintext[: plaintext.rindex("-") + 1] + "A" * 43
    with pytest.raises(AuthenticationFailed, match="Incorrect"):
        await auth.authenticate(f"Bearer {forged}")
    with pytest.raises(AuthenticationFailed, match="Bearer"):
        await auth.authenticate(f"Basic {plaintext}")
    with pytest.raises(AuthenticationFailed) as info:
        await auth.authenticate(None)
    assert info.value.code == "missing_api_key"
