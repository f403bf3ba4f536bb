"""Fair share on the real request path: a shared model at capacity queues other teams'
requests, and one that waits past `max_wait_s` gets OpenAI's 429 with `Retry-After`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from asgi_client import sdk
from fault_server import FaultServer
from openapi_contract import validate

from serve.api.app import create_app, with_context
from serve.bootstrap import build_gateway
from serve.config import parse_platform_config

HEAVY = "sk-rg-fairgw01-" + "a" * 32
LIGHT = "sk-rg-fairgw02-" + "b" * 32
MESSAGES: Any = [{"role": "user", "content": "Summarise the quarterly sales report."}]


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    made = FaultServer()
    made.start()
    yield made
    made.stop()


@pytest.fixture
async def app(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Any]:
    monkeypatch.setenv("RG_FAIR_HEAVY", HEAVY)
    monkeypatch.setenv("RG_FAIR_LIGHT", LIGHT)
    backend = {"kind": "openai_compatible", "base_url": server.base_url, "model": "gate"}
    config = parse_platform_config(
        {
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path}/fair.db"},
            "teams": [{"name": "heavy"}, {"name": "light"}],
            "keys": [
                {"team": "heavy", "name": "h", "key": "env:RG_FAIR_HEAVY"},
                {"team": "light", "name": "l", "key": "env:RG_FAIR_LIGHT"},
            ],
            "models": [
                {
                    "name": "shared",
                    "backend": backend,
                    "tasks": ["chat"],
                    "tenancy": {"owner_team": "heavy", "sharing": "shared"},
                    "fair_share": {"capacity": 1, "max_wait_s": 0.2},
                }
            ],
            "cache": {"exact": {"enabled": False}},
        }
    )
    gateway = await build_gateway(config, {})
    yield with_context(create_app(gateway), gateway, under_serve=False)
    await gateway.aclose()


async def test_a_request_queued_past_max_wait_gets_a_429_and_the_holder_finishes(
    app: Any, server: FaultServer
) -> None:
    before = server.received["gate"]
    holder = asyncio.create_task(
        sdk(app, HEAVY).chat.completions.create(model="shared", messages=MESSAGES)
    )
    deadline = time.monotonic() + 10
    while server.received["gate"] == before:  # the heavy request holds the only slot
        assert time.monotonic() < deadline, "the first request never reached the backend"
        await asyncio.sleep(0.01)
    with pytest.raises(openai.RateLimitError) as caught:
        await sdk(app, LIGHT).chat.completions.create(model="shared", messages=MESSAGES)
    response = caught.value.response
    validate("ErrorResponse", response.json())
    assert response.json()["error"]["code"] == "fair_share_queue_timeout"
    assert int(response.headers["retry-after"]) >= 1
    assert server.received["gate"] == before + 1  # the queued request never reached it
    server.open_gate()
    reply = await asyncio.wait_for(holder, 10)
    assert reply.choices[0].message.content == "Healthy answer."
