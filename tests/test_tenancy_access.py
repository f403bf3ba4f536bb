"""A model with ``tenancy.sharing: dedicated`` serves its owner team only, whatever the
other teams' allowlists say: through the real HTTP edge with the official SDK, for the
model, its alias, /v1/models, a route's pick and a fallback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from asgi_client import sdk
from fake_upstream import FakeUpstream
from openapi_contract import validate

from serve.api.app import create_app, with_context
from serve.bootstrap import build_gateway
from serve.config import parse_platform_config

OWNER = "sk-rg-tenant01-" + "a" * 32
OTHER = "sk-rg-tenant02-" + "b" * 32
MESSAGES: Any = [{"role": "user", "content": "hi"}]


def backend(upstream: FakeUpstream) -> dict[str, Any]:
    return {"kind": "openai_compatible", "base_url": upstream.base_url, "model": "fake-upstream"}


def platform_args(upstream: FakeUpstream, tmp: Path) -> dict[str, Any]:
    return {
        "database": {"url": f"sqlite+aiosqlite:///{tmp}/tenancy.db"},
        "teams": [{"name": "ml"}, {"name": "web"}],  # both may call every model ("*")
        "keys": [
            {"team": "ml", "name": "ml", "key": "env:RG_TENANT_OWNER"},
            {"team": "web", "name": "web", "key": "env:RG_TENANT_OTHER"},
        ],
        "models": [
            {
                "name": "ml-private",
                "aliases": ["ml-alias"],
                "backend": backend(upstream),
                "tasks": ["chat"],
                "tenancy": {"owner_team": "ml", "sharing": "dedicated"},
            },
            {
                "name": "ml-shared",
                "backend": backend(upstream),
                "tasks": ["chat"],
                "tenancy": {"owner_team": "ml", "sharing": "shared"},
            },
            {
                "name": "public",
                "backend": {**backend(upstream), "model": "fail-500"},
                "tasks": ["chat"],
                "reliability": {
                    "retry": {"max_attempts": 1},
                    # never open: the other team's failures must not change the owner's path
                    "breaker": {"failure_threshold": 1000},
                    "fallbacks": ["ml-private"],
                },
            },
        ],
        "routes": [{"name": "to-private", "targets": [{"model": "ml-private", "weight": 1}]}],
        "evaluations": [
            {
                "id": "eval-1",
                "report": "gs://evals/1.json",
                "approved": [{"primary": "public", "fallback": "ml-private"}],
            }
        ],
    }


@pytest.fixture
async def app(
    upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Any]:
    monkeypatch.setenv("RG_TENANT_OWNER", OWNER)
    monkeypatch.setenv("RG_TENANT_OTHER", OTHER)
    gateway = await build_gateway(parse_platform_config(platform_args(upstream, tmp_path)), {})
    yield with_context(create_app(gateway), gateway, under_serve=False)
    await gateway.aclose()


@pytest.mark.parametrize(
    ("key", "model", "allowed"),
    [
        (OWNER, "ml-private", True),
        (OWNER, "ml-alias", True),
        (OWNER, "to-private", True),
        (OTHER, "ml-private", False),
        (OTHER, "ml-alias", False),
        (OTHER, "to-private", False),  # the route's only pick is another team's model
        (OTHER, "ml-shared", True),
    ],
)
async def test_a_dedicated_model_answers_its_owner_team_only(
    app: Any, key: str, model: str, allowed: bool
) -> None:
    client = sdk(app, key)
    if allowed:
        reply = await client.chat.completions.create(model=model, messages=MESSAGES)
        validate("CreateChatCompletionResponse", reply.model_dump(exclude_unset=True))
        return
    with pytest.raises(openai.PermissionDeniedError) as info:
        await client.chat.completions.create(model=model, messages=MESSAGES)
    validate("ErrorResponse", info.value.response.json())


async def test_other_teams_do_not_see_a_dedicated_model(app: Any) -> None:
    owner = {m.id for m in (await sdk(app, OWNER).models.list()).data}
    other = {m.id for m in (await sdk(app, OTHER).models.list()).data}
    assert {"ml-private", "ml-alias", "to-private"} <= owner
    assert not {"ml-private", "ml-alias", "to-private"} & other
    assert {"ml-shared", "public"} <= other


async def test_a_fallback_to_another_teams_dedicated_model_is_never_taken(app: Any) -> None:
    """``public`` always fails (500) and falls back to ``ml-private``: the owner team gets
    the fallback's answer, another team gets the failure, not the dedicated model."""
    raw = await sdk(app, OWNER).chat.completions.with_raw_response.create(
        model="public", messages=MESSAGES
    )
    assert raw.headers["x-raygate-fallback"] == "public->ml-private"
    with pytest.raises(openai.APIStatusError) as info:
        await sdk(app, OTHER).chat.completions.create(model="public", messages=MESSAGES)
    assert info.value.status_code >= 500
    validate("ErrorResponse", info.value.response.json())
