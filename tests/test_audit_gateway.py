"""The audit trail of the real request path: every request, read back through the admin
API by the admin key or a team's auditor key, with nothing secret in it.

The gateway writes each request's record to its outbox (a local spool) and ships it to
the platform database (SQLite here; PostgreSQL is covered by tests/test_audit_store.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from asgi_client import http, sdk
from fake_upstream import FakeUpstream

from serve.api.app import create_app, with_context
from serve.audit import AuditOutbox
from serve.bootstrap import build_gateway
from serve.config import parse_platform_config
from serve.gateway import Gateway

ADMIN = "sk-rg-admin-audit-" + "z" * 24
DEV = "sk-rg-audit0001-" + "a" * 32
OPS = "sk-rg-audit0002-" + "b" * 32
EMAIL, CARD = "ana.lopez@example.org", "5555 5555 5555 4444"


@pytest.fixture
async def gateway(
    upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Gateway, Any]]:
    monkeypatch.setenv("RG_AUDIT_ADMIN", ADMIN)
    monkeypatch.setenv("RG_AUDIT_DEV", DEV)
    monkeypatch.setenv("RG_AUDIT_OPS", OPS)
    backend = {"kind": "openai_compatible", "base_url": upstream.base_url}
    config = parse_platform_config(
        {
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path}/audit.db"},
            "auth": {"admin_key": "env:RG_AUDIT_ADMIN"},
            "teams": [{"name": "dev"}, {"name": "ops"}],
            "keys": [
                {"team": "dev", "name": "dev", "key": "env:RG_AUDIT_DEV"},
                {"team": "ops", "name": "ops", "key": "env:RG_AUDIT_OPS"},
            ],
            "models": [
                {"name": "echo", "backend": {**backend, "model": "echo"}, "tasks": ["chat"]},
                {
                    "name": "broken",
                    "backend": {**backend, "model": "fail-500"},
                    "tasks": ["chat"],
                    "reliability": {"retry": {"max_attempts": 1}},
                },
            ],
            "cache": {"exact": {"enabled": False}},
        }
    )
    made = await build_gateway(config, {})
    yield made, with_context(create_app(made), made, under_serve=False)
    await made.aclose()


async def drained(gateway: Gateway) -> None:
    (outbox,) = [o for o in gateway.observers if isinstance(o, AuditOutbox)]
    assert await outbox.wait_drained(10)


async def test_every_request_is_audited_once_and_nothing_secret_is_kept(
    gateway: tuple[Gateway, Any],
) -> None:
    made, app = gateway
    client = sdk(app, DEV)
    prompt = f"Send the invoice to {EMAIL}, paid with {CARD}."
    calls: list[Any] = [
        client.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": prompt}]
        ),
        client.chat.completions.create(
            model="broken", messages=[{"role": "user", "content": "hi"}]
        ),
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}]),
        sdk(app, "sk-rg-wrong000-" + "0" * 32).chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "hi"}]
        ),
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert [type(r).__name__ for r in results] == [
        "ChatCompletion",
        "InternalServerError",
        "NotFoundError",
        "AuthenticationError",
    ]
    await drained(made)
    async with http(app) as admin:
        page = await admin.get("/admin/audit", headers={"authorization": f"Bearer {ADMIN}"})
    assert page.status_code == 200, page.text
    rows = page.json()["data"]
    assert sorted(r["status"] for r in rows) == [200, 401, 404, 502]
    assert len({r["request_id"] for r in rows}) == 4
    text = page.text
    for secret in (EMAIL, CARD, DEV, ADMIN):
        assert secret not in text
    answered = next(r for r in rows if r["status"] == 200)
    assert answered["team"] == "dev" and answered["model_served"] == "echo"
    assert "<EMAIL_ADDRESS" in (answered["prompt"] or "")


async def test_an_auditor_key_reads_only_its_team_and_calls_no_model(
    gateway: tuple[Gateway, Any],
) -> None:
    made, app = gateway
    await sdk(app, DEV).chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "dev question"}]
    )
    await sdk(app, OPS).chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "ops question"}]
    )
    await drained(made)
    async with http(app) as client:
        created = await client.post(
            "/admin/keys",
            headers={"authorization": f"Bearer {ADMIN}"},
            json={"team": "ops", "name": "ops-auditor", "role": "auditor"},
        )
        assert created.status_code == 201, created.text
        auditor = {"authorization": f"Bearer {created.json()['key']}"}
        own = await client.get("/admin/audit", headers=auditor)
        other = await client.get("/admin/audit?team=dev", headers=auditor)
        user = await client.get("/admin/audit", headers={"authorization": f"Bearer {OPS}"})
    assert own.status_code == 200 and {r["team"] for r in own.json()["data"]} == {"ops"}
    assert other.status_code == 403
    assert user.status_code == 403
    with pytest.raises(openai.PermissionDeniedError):
        await sdk(app, created.json()["key"]).chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "hi"}]
        )


async def test_a_model_owner_key_calls_models_and_reads_the_model_admin_api(
    gateway: tuple[Gateway, Any],
) -> None:
    """The real gateway's wiring of the `model_owner` role (the route logic itself is in
    tests/test_model_admin_routes.py): it calls models, reads /admin/config and
    /admin/models, and is no auditor; a user key may not read the model admin API."""
    _, app = gateway
    async with http(app) as client:
        created = await client.post(
            "/admin/keys",
            headers={"authorization": f"Bearer {ADMIN}"},
            json={"team": "ops", "name": "ops-notebook", "role": "model_owner"},
        )
        assert created.status_code == 201, created.text
        owner = {"authorization": f"Bearer {created.json()['key']}"}
        config = await client.get("/admin/config", headers=owner)
        models = await client.get("/admin/models", headers=owner)
        audit = await client.get("/admin/audit", headers=owner)
        user = await client.get("/admin/config", headers={"authorization": f"Bearer {OPS}"})
    assert config.status_code == 200 and models.status_code == 200, config.text
    assert audit.status_code == 403
    assert user.status_code == 403 and user.json()["error"]["code"] == "not_model_owner"
    reply = await sdk(app, created.json()["key"]).chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content


async def test_the_usage_report_counts_requests_by_team_and_model(
    gateway: tuple[Gateway, Any],
) -> None:
    made, app = gateway
    for _ in range(3):
        await sdk(app, DEV).chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "status?"}]
        )
    await drained(made)
    async with http(app) as client:
        report = await client.get("/admin/usage", headers={"authorization": f"Bearer {ADMIN}"})
    assert report.status_code == 200, report.text
    body = report.json()
    rows = [r for r in body["data"] if r["team"] == "dev" and r["model"] == "echo"]
    assert sum(r["requests"] for r in rows) == 3
    assert any(i["team"] == "dev" and i["model_served"] == "echo" for i in body["inventory"])


def test_raygate_usage_is_a_cli_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from serve.cli import main

    monkeypatch.setenv("RAYGATE_ADMIN_KEY", ADMIN)
    assert main(["usage", "--url", "http://127.0.0.1:1", "--timeout", "2"]) == 1  # unreachable
