"""The admin audit and usage API: scopes, parameters, OpenAI error bodies, decryption."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response
from openapi_contract import validate
from test_audit_store import T0, close_store, open_store, record

from serve.api.audit_routes import add_routes
from serve.audit import AuditRow, AuditScope, AuditStore, PromptCipher
from serve.errors import AuthenticationFailed, GatewayError

CIPHER = PromptCipher(bytes(range(32)))
SCOPES = {"Bearer admin": AuditScope.all_teams(), "Bearer alpha-auditor": AuditScope.only("alpha")}


async def authorize(header: str | None) -> AuditScope:
    scope = SCOPES.get(header or "")
    if scope is None:
        raise AuthenticationFailed("Incorrect API key provided.")
    return scope


@pytest.fixture(scope="module")
async def store(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AuditStore]:
    tmp = tmp_path_factory.mktemp("audit-api")
    s = await open_store("sqlite", None, tmp, cipher=CIPHER)  # type: ignore[arg-type]
    rows = [AuditRow.from_record(record(n), CIPHER) for n in range(5)]
    rows.append(AuditRow.from_record(record(10, team="beta", model_served="m2"), CIPHER))
    rows.append(
        AuditRow.from_record(
            record(11, prompt_policy="full", prompt="full text", response="answer"), CIPHER
        )
    )
    await s.insert_many(rows)
    yield s
    await close_store(s)


@pytest.fixture(scope="module")
def client(store: AuditStore) -> httpx.AsyncClient:
    app = FastAPI()

    @app.exception_handler(GatewayError)  # as serve.api.app does
    async def _error(request: Request, exc: GatewayError) -> Response:
        return Response(orjson.dumps(exc.body()), exc.status, media_type="application/json")

    add_routes(app, store, authorize)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


async def get(client: httpx.AsyncClient, path: str, key: str, **params: Any) -> httpx.Response:
    return await client.get(path, params=params, headers={"authorization": f"Bearer {key}"})


async def test_admin_sees_every_team_newest_first_and_pages(client: httpx.AsyncClient) -> None:
    first = (await get(client, "/admin/audit", "admin", limit=4)).json()
    assert first["object"] == "list" and first["has_more"] is True
    assert [r["request_id"] for r in first["data"]] == [
        "req-000011",
        "req-000010",
        "req-000004",
        "req-000003",
    ]
    rest = (await get(client, "/admin/audit", "admin", cursor=first["next_cursor"])).json()
    assert [r["request_id"] for r in rest["data"]] == ["req-000002", "req-000001", "req-000000"]
    assert rest["has_more"] is False and rest["next_cursor"] is None


async def test_full_text_is_decrypted_for_admins_only(client: httpx.AsyncClient) -> None:
    admin = (await get(client, "/admin/audit", "admin", limit=1)).json()["data"][0]
    assert admin["prompt"] == "full text" and admin["response"] == "answer"
    auditor = (await get(client, "/admin/audit", "alpha-auditor", limit=1)).json()["data"][0]
    assert auditor["request_id"] == "req-000011"
    assert auditor["prompt"] is None and auditor["encrypted"] is True
    assert "key_version" in auditor and auditor["started_at"].endswith("+00:00")


@pytest.mark.parametrize(
    ("params", "ids"),
    [
        ({}, 6),  # a team auditor's queries are limited to its team
        ({"team": "alpha"}, 6),
        ({"model": "m1", "since": "2026-03-01T12:00:02Z"}, 4),
        ({"until": "2026-03-01T12:00:02+00:00"}, 2),
        ({"until": "2026-03-01T12:00:02 00:00"}, 2),  # an unencoded "+" arrives as a space
        ({"since": "2026-03-01T12:00:02", "limit": 1}, 1),  # naive means UTC
    ],
)
async def test_team_auditor_queries(
    client: httpx.AsyncClient, params: dict[str, str], ids: int
) -> None:
    reply = await get(client, "/admin/audit", "alpha-auditor", **params)
    assert reply.status_code == 200, reply.text
    data = reply.json()["data"]
    assert len(data) == ids and {r["team"] for r in data} == {"alpha"}


@pytest.mark.parametrize(
    ("path", "key", "params", "status", "param", "code"),
    [
        ("/admin/audit", "alpha-auditor", {"team": "beta"}, 403, "team", "team_not_allowed"),
        ("/admin/usage", "alpha-auditor", {"team": "beta"}, 403, "team", "team_not_allowed"),
        ("/admin/audit", "nobody", {}, 401, None, "invalid_api_key"),
        ("/admin/audit", "admin", {"since": "yesterday"}, 400, "since", "invalid_time"),
        ("/admin/audit", "admin", {"limit": "0"}, 400, "limit", "invalid_limit"),
        ("/admin/audit", "admin", {"limit": "1001"}, 400, "limit", "invalid_limit"),
        ("/admin/audit", "admin", {"limit": "ten"}, 400, "limit", "invalid_limit"),
        ("/admin/audit", "admin", {"cursor": "@@"}, 400, "cursor", "invalid_cursor"),
        ("/admin/audit", "admin", {"tem": "alpha"}, 400, "tem", "unknown_parameter"),
        (
            "/admin/usage",
            "admin",
            {"since": "2026-03-02T00:00:00Z", "until": "2026-03-01T00:00:00Z"},
            400,
            "since",
            "invalid_time",
        ),
    ],
)
async def test_errors_are_openai_error_bodies(
    client: httpx.AsyncClient,
    path: str,
    key: str,
    params: dict[str, str],
    status: int,
    param: str | None,
    code: str,
) -> None:
    reply = await get(client, path, key, **params)
    assert reply.status_code == status
    body = reply.json()
    validate("ErrorResponse", body)
    assert body["error"]["param"] == param and body["error"]["code"] == code


async def test_usage_report_and_inventory(client: httpx.AsyncClient) -> None:
    window = {"since": "2026-03-01T00:00:00Z", "until": "2026-03-02T00:00:00Z"}
    report = (await get(client, "/admin/usage", "admin", **window)).json()
    assert report["object"] == "usage.report" and report["team"] is None
    rows = {(r["team"], r["model"]): r for r in report["data"]}
    assert set(rows) == {("alpha", "m1"), ("beta", "m2")}
    alpha = rows[("alpha", "m1")]
    assert alpha["requests"] == 6 and alpha["day"] == "2026-03-01"
    assert alpha["input_tokens"] == 60 and alpha["error_rate"] == 0.0
    assert alpha["p50_ms"] is not None and alpha["p95_ms"] >= alpha["p50_ms"]
    assert {(i["team"], i["key_id"], i["requests"]) for i in report["inventory"]} == {
        ("alpha", "k1", 6),
        ("beta", "k1", 1),
    }
    own = (await get(client, "/admin/usage", "alpha-auditor", **window)).json()
    assert own["team"] == "alpha" and {r["team"] for r in own["data"]} == {"alpha"}
    assert {i["team"] for i in own["inventory"]} == {"alpha"}


async def test_usage_defaults_to_the_last_seven_days(client: httpx.AsyncClient) -> None:
    report = (await get(client, "/admin/usage", "admin", until="2026-03-05T00:00:00Z")).json()
    assert report["since"] == "2026-02-26T00:00:00+00:00"
    assert sum(r["requests"] for r in report["data"]) == 7
    later = T0 + timedelta(days=30)
    empty = (await get(client, "/admin/usage", "admin", since=later.isoformat())).json()
    assert empty["data"] == [] and empty["inventory"] == []
