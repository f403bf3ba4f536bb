"""`raygate usage`: key sources, the request it makes, the table, and its failures."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from serve.audit import UsageRow
from serve.usage_cli import COLUMNS, main

REPORT: dict[str, Any] = {
    "object": "usage.report",
    "since": "2026-03-01T00:00:00+00:00",
    "until": "2026-03-02T00:00:00+00:00",
    "team": None,
    "data": [
        UsageRow(
            "alpha", "m1", "2026-03-01", 40, 1000, 500, 0.25, 2, 10, 120.0, 900.5, 38
        ).public(),
        UsageRow("beta", "m2", "2026-03-01", 1, 7, 1, 0.0, 1, 0, None, None, 0).public(),
    ],
    "inventory": [],
}


class Server:
    def __init__(self, status: int = 200, body: Any = REPORT) -> None:
        self.status, self.body = status, body
        self.requests: list[httpx.Request] = []

    def transport(self) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return httpx.Response(self.status, content=orjson.dumps(self.body))

        return httpx.MockTransport(handle)


def run(argv: list[str], server: Server, **kwargs: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, transport=server.transport(), out=out, err=err, **kwargs)
    return code, out.getvalue(), err.getvalue()


def test_table_and_request(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("sk-admin-from-file\n")
    server = Server()
    argv = [
        "--url",
        "http://gw:9",
        "--since",
        "2026-03-01",
        "--team",
        "alpha",
        "--admin-key-file",
        str(key_file),
    ]
    code, out, _ = run(argv, server)
    assert code == 0
    (sent,) = server.requests
    assert sent.url.path == "/admin/usage" and sent.url.host == "gw"
    assert dict(sent.url.params) == {"since": "2026-03-01", "team": "alpha"}
    assert sent.headers["authorization"] == "Bearer sk-admin-from-file"
    lines = out.splitlines()
    assert lines[1].split() == [
        "team",
        "model",
        "day",
        "requests",
        "tokens",
        "cost",
        "p50",
        "p95",
        "error",
        "%",
        "cache-hit",
        "%",
    ]
    assert lines[2].split() == [
        "alpha",
        "m1",
        "2026-03-01",
        "40",
        "1500",
        "$0.2500",
        "120ms",
        "900ms",
        "5.0",
        "25.0",
    ]
    assert lines[3].split()[6:8] == ["-", "-"]
    assert len(COLUMNS) == 10


def test_json_output_is_the_report() -> None:
    code, out, _ = run(["--json"], Server(), admin_key="k")
    assert code == 0 and orjson.loads(out) == REPORT


def test_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYGATE_ADMIN_KEY", "sk-admin-env")
    server = Server()
    assert run([], server)[0] == 0
    assert server.requests[0].headers["authorization"] == "Bearer sk-admin-env"


def test_default_key_file_under_raygate_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("RAYGATE_ADMIN_KEY", raising=False)
    monkeypatch.setenv("RAYGATE_HOME", str(tmp_path))
    assert run([], Server())[0] == 2  # no file yet
    (tmp_path / "raygate-admin-key").write_text("sk-admin-home\n")
    server = Server()
    assert run([], server)[0] == 0
    assert server.requests[0].headers["authorization"] == "Bearer sk-admin-home"


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (
            403,
            {"error": {"message": "team beta only", "type": "x", "param": None, "code": None}},
            "HTTP 403: team beta only",
        ),
        (502, "gateway down", "HTTP 502"),
    ],
)
def test_http_errors_are_reported(status: int, body: Any, message: str) -> None:
    code, out, err = run([], Server(status, body), admin_key="k")
    assert code == 1 and out == "" and message in err


def test_unreachable_gateway() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    err = io.StringIO()
    code = main([], admin_key="k", transport=httpx.MockTransport(refuse), err=err)
    assert code == 1 and "cannot reach" in err.getvalue()
