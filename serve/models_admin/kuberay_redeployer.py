"""Redeploy on KubeRay: patch the RayService's ``spec.serveConfigV2``.

The RayService spec is the source of truth under KubeRay (the operator re-applies it), so
the change goes there and nowhere else: read the live ``serveConfigV2``, replace only the
raygate application's ``args``, merge-patch it back (`RayServiceClient.patch_serve_config`)
with the ``resourceVersion`` it read. Other applications in the same Serve config are kept
as they are; when someone else wrote the RayService in between (kubectl, GitOps, another
platform), the API server answers 409 and the change is re-applied on a fresh read, so
their write is never lost. Status comes from the
RayService's ``activeServiceStatus`` as the operator reports it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import yaml

from kuberay.client import KubeRayError, RayServiceClient
from serve.models_admin.redeploy import AppStatus

__all__ = ["KubeRayRedeployer", "with_platform_args"]

PATCH_ATTEMPTS = 5


def with_platform_args(
    serve_config: Mapping[str, Any], app_name: str, platform: Mapping[str, Any]
) -> dict[str, Any]:
    """``serve_config`` with only ``app_name``'s args replaced (every other field kept)."""
    apps = [dict(app) for app in serve_config.get("applications") or ()]
    matches = [app for app in apps if app.get("name") == app_name]
    if len(matches) != 1:
        raise RuntimeError(f"serveConfigV2 has no application named {app_name!r}")
    matches[0]["args"] = dict(platform)
    return {**serve_config, "applications": apps}


class KubeRayRedeployer:
    def __init__(
        self, client: RayServiceClient, rayservice: str, app_name: str = "raygate"
    ) -> None:
        self._client = client
        self.rayservice = rayservice
        self.app_name = app_name

    async def redeploy(self, platform: Mapping[str, Any]) -> None:
        await asyncio.to_thread(self._redeploy, dict(platform))

    async def status(self) -> AppStatus:
        return await asyncio.to_thread(self._status)

    def _redeploy(self, platform: dict[str, Any]) -> None:
        for attempt in range(1, PATCH_ATTEMPTS + 1):
            obj = self._client.get(self.rayservice)
            if obj is None:
                raise RuntimeError(f"RayService {self.rayservice!r} does not exist")
            current = yaml.safe_load(obj.get("spec", {}).get("serveConfigV2") or "") or {}
            try:
                self._client.patch_serve_config(
                    self.rayservice,
                    with_platform_args(current, self.app_name, platform),
                    resource_version=(obj.get("metadata") or {}).get("resourceVersion"),
                )
                return
            except KubeRayError as exc:
                if exc.status != 409 or attempt == PATCH_ATTEMPTS:
                    raise

    def _status(self) -> AppStatus:
        status = self._client.status(self.rayservice)
        app = status.applications.get(self.app_name)
        if app is None:
            return AppStatus("NOT_STARTED", message=f"RayService {status.service_status}")
        # While the operator rolls out a new cluster the active one still runs the old config.
        overall = "DEPLOYING" if status.upgrading else app.status
        return AppStatus(overall, dict(app.deployments), app.message)
