"""Redeploy on a local Ray through Serve's own API, from inside an ingress replica.

Ray 2.60 keeps, per application, how it was deployed (``source``):

- ``imperative`` (``serve.run``, what ``raygate up`` and the e2e fixture do): we call
  ``serve.run`` again for the raygate application only, without waiting for it to be
  RUNNING (this replica is one of those being replaced). Other applications are untouched.
- ``declarative`` (``serve deploy``, the dashboard's ``PUT /api/serve/applications/``):
  applying a config replaces *every* declarative application, so we send the controller
  the deployed config of each of them, with only raygate's ``args`` changed (what the
  REST API would do, without needing the dashboard's address).

Blocking Ray calls run in a worker thread; the replica's event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from typing import Any

from serve.models_admin.redeploy import AppStatus

__all__ = ["ServeRedeployer", "declarative_config"]


def declarative_config(
    details: Mapping[str, Any], app_name: str, platform: Mapping[str, Any]
) -> dict[str, Any]:
    """The multi-application config that changes only ``app_name``'s args
    (``details``: the controller's ``get_serve_instance_details``)."""
    apps = []
    for name, app in sorted(details.get("applications", {}).items()):
        if _text(app.get("source")) != "declarative":
            continue
        config = copy.deepcopy(dict(app.get("deployed_app_config") or {}))
        if not config:
            raise RuntimeError(f"application {name!r} has no deployed config to keep")
        if name == app_name:
            config["args"] = dict(platform)
        apps.append(config)
    if app_name not in {a.get("name") for a in apps}:
        raise RuntimeError(f"application {app_name!r} is not deployed declaratively")
    out: dict[str, Any] = {"applications": apps}
    if details.get("target_capacity") is not None:
        out["target_capacity"] = details["target_capacity"]
    return out


def _require_ray() -> None:
    """Serve's client would start a local Ray cluster when none is connected (its
    ``_connect`` calls ``ray.init()``): outside Ray, refuse instead."""
    import ray

    if not ray.is_initialized():
        raise RuntimeError("not running on Ray Serve (no Ray connection in this process)")


def _text(value: Any) -> str:
    """Serve's details hold str enums (``APIType.DECLARATIVE``): their value, not repr."""
    if value is None:
        return ""
    return str(getattr(value, "value", value))


class ServeRedeployer:
    def __init__(self, app_name: str | None = None) -> None:
        self._app_name = app_name

    @property
    def app_name(self) -> str:
        if self._app_name is None:
            from ray import serve

            self._app_name = str(serve.get_replica_context().app_name)
        return self._app_name

    async def redeploy(self, platform: Mapping[str, Any]) -> None:
        await asyncio.to_thread(self._redeploy, dict(platform))

    async def status(self) -> AppStatus:
        return await asyncio.to_thread(self._status)

    def _details(self) -> dict[str, Any]:
        from ray.serve.context import _get_global_client

        _require_ray()
        client = _get_global_client()
        assert client is not None
        return dict(client.get_serve_details())

    def _redeploy(self, platform: dict[str, Any]) -> None:
        from ray import serve
        from ray.serve.context import _get_global_client
        from ray.serve.schema import ServeDeploySchema

        from serve.app import build_graph
        from serve.config import parse_platform_config

        name = self.app_name
        details = self._details()
        app = details.get("applications", {}).get(name) or {}
        if _text(app.get("source")) == "declarative":
            schema = ServeDeploySchema.model_validate(declarative_config(details, name, platform))
            client = _get_global_client()
            assert client is not None
            client.deploy_apps(schema)
            return
        graph = build_graph(parse_platform_config(platform, "new platform config"))
        serve._run(graph, _blocking=False, name=name, route_prefix=app.get("route_prefix", "/"))

    def _status(self) -> AppStatus:
        app = self._details().get("applications", {}).get(self.app_name)
        if app is None:
            return AppStatus("NOT_STARTED")
        return AppStatus(
            status=_text(app.get("status")),
            message=_text(app.get("message")),
            deployments={
                d: _text(info.get("status")) for d, info in (app.get("deployments") or {}).items()
            },
        )
