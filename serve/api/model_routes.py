"""Admin API for models: list, add, remove, publish an alias, roll the config back.

Every change names the config version it is based on (``base_version``); a stale base is
a 409 ``config_conflict`` (re-read, re-apply). An accepted change answers 202 with the new
version: the platform is redeploying, and ``GET /admin/models`` shows the rollout
(``running_version`` is the version of the replica that answered, the application and
deployment statuses are Serve's). The admin key changes anything; a team's
``model_owner`` key reads the config and changes only its team's models
(`serve.models_admin.ownership`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from models.spec import ModelSpec
from serve.config import PlatformConfig
from serve.errors import InvalidRequest
from serve.models_admin import planner
from serve.models_admin.ownership import ChangeScope
from serve.models_admin.service import ChangeResult, ModelsAdmin
from serve.openai_requests import parse

__all__ = ["AdminGate", "add_routes", "model_entries"]


class AdminGate(Protocol):
    """What the routes need of the gateway (`serve.gateway.Gateway` is one)."""

    config: PlatformConfig

    async def authorize_models(self, authorization: str | None) -> ChangeScope: ...


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    base_version: int = Field(ge=0)
    author: str = Field("admin", min_length=1, max_length=128)
    reason: str | None = Field(None, max_length=1000)


class AddModel(_Body):
    spec: ModelSpec
    # Deep-merged into the spec's platform entry: how it runs here (backend.n_threads,
    # deployment.num_cpus, ...), never its name or aliases.
    overrides: dict[str, Any] = Field(default_factory=dict)


class PublishAlias(_Body):
    alias: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")


class Rollback(_Body):
    version: int | None = Field(None, ge=1)


def model_entries(
    config: Mapping[str, Any], deployments: Mapping[str, str]
) -> list[dict[str, Any]]:
    """One entry per configured model, with its Serve deployment's status."""
    out = []
    for model in config.get("models") or ():
        backend = model.get("backend") or {}
        remote = backend.get("kind") in ("openai_compatible", "vertex", "bedrock")
        in_ingress = remote and model.get("placement", "ingress") == "ingress"
        deployment = None if in_ingress else f"model-{model['name']}"
        out.append(
            {
                "name": model["name"],
                "aliases": list(model.get("aliases") or ()),
                "backend": backend.get("kind"),
                "deployment": deployment,
                "status": "IN_INGRESS"
                if deployment is None
                else deployments.get(deployment, "NOT_DEPLOYED"),
            }
        )
    return out


def add_routes(
    app: FastAPI,
    gateway: AdminGate,
    read_json: Callable[[Request], Awaitable[Any]],
    json_response: Callable[..., Response],
    admin: ModelsAdmin | None = None,
) -> None:
    """``admin`` defaults to one built from the gateway's config on first use."""
    holder: list[ModelsAdmin] = [admin] if admin is not None else []

    def service() -> ModelsAdmin:
        if not holder:
            from serve.models_admin.factory import build_models_admin

            holder.append(
                build_models_admin(gateway.config, getattr(gateway.config, "models_admin", None))
            )
        return holder[0]

    def accepted(result: ChangeResult, **extra: Any) -> Response:
        body = {"version": result.version.version, "changed": result.changed, **extra}
        return json_response(body, 202 if result.changed else 200)

    @app.get("/admin/config")
    async def get_config(request: Request) -> Response:
        await gateway.authorize_models(request.headers.get("authorization"))
        current = await service().current()
        running = await service().running_version()
        history = await service().versions.history()
        return json_response(
            {
                **current.summary(),
                "running_version": running,
                "in_sync": running == current.version,
                "config": current.config,
                "history": [v.summary() for v in history],
            }
        )

    @app.get("/admin/models")
    async def list_models(request: Request) -> Response:
        await gateway.authorize_models(request.headers.get("authorization"))
        current = await service().current()
        status = await service().status()
        aliases = {
            alias: m["name"]
            for m in current.config.get("models") or ()
            for alias in m.get("aliases") or ()
        }
        return json_response(
            {
                "object": "list",
                "version": current.version,
                "running_version": await service().running_version(),
                "application": status.public(),
                "aliases": aliases,
                "data": model_entries(current.config, status.deployments),
            }
        )

    @app.post("/admin/models")
    async def add_model(request: Request) -> Response:
        scope = await gateway.authorize_models(request.headers.get("authorization"))
        body = parse(AddModel, await read_json(request))
        result = await service().change(
            body.base_version,
            lambda config: planner.add_model(config, body.spec, body.overrides),
            scope.author(body.author),
            body.reason or f"add model {body.spec.name}",
            scope,
        )
        return accepted(result, model=body.spec.name)

    @app.delete("/admin/models/{name}")
    async def remove_model(name: str, request: Request) -> Response:
        scope = await gateway.authorize_models(request.headers.get("authorization"))
        base = _base_version(request)
        result = await service().change(
            base,
            lambda config: planner.remove_model(config, name),
            scope.author(request.query_params.get("author") or "admin"),
            f"remove model {name}",
            scope,
        )
        return accepted(result, model=name)

    @app.post("/admin/models/{name}/publish")
    async def publish(name: str, request: Request) -> Response:
        scope = await gateway.authorize_models(request.headers.get("authorization"))
        body = parse(PublishAlias, await read_json(request))
        result = await service().change(
            body.base_version,
            lambda config: planner.publish_alias(config, name, body.alias),
            scope.author(body.author),
            body.reason or f"publish {body.alias} -> {name}",
            scope,
        )
        return accepted(result, model=name, alias=body.alias)

    @app.post("/admin/config/rollback")
    async def rollback(request: Request) -> Response:
        scope = await gateway.authorize_models(request.headers.get("authorization"))
        body = parse(Rollback, await read_json(request))
        result = await service().rollback(
            body.base_version, body.version, scope.author(body.author), body.reason, scope
        )
        return accepted(result)


def _base_version(request: Request) -> int:
    value = request.query_params.get("base_version")
    if value is None or not value.isdigit():
        raise InvalidRequest(
            "Query parameter 'base_version' (the config version you read) is required.",
            param="base_version",
            code="invalid_value",
        )
    return int(value)
