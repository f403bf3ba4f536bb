"""Config of the model admin API: where the platform config history lives, how to redeploy.

Standalone pydantic models (the platform config embeds `ModelsAdminConfig` as it is, e.g.
``PlatformConfig.models_admin``); this module never imports ``serve.config``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = ["KubeRayRedeployConfig", "ModelsAdminConfig", "ServeRedeployConfig"]

TableName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServeRedeployConfig(_Frozen):
    """Local Ray: redeploy the raygate application through Ray Serve's own API."""

    kind: Literal["serve"] = "serve"


class KubeRayRedeployConfig(_Frozen):
    """KubeRay: patch the RayService's ``spec.serveConfigV2``; the operator rolls it out."""

    kind: Literal["kuberay"]
    namespace: str = Field(min_length=1)
    rayservice: str = Field(min_length=1)
    application: str = "raygate"
    # Path of a kubeconfig file; None = the pod's service account (in-cluster config).
    kubeconfig: str | None = None


class ModelsAdminConfig(_Frozen):
    enabled: bool = True
    table: TableName = "raygate_config_versions"
    redeploy: ServeRedeployConfig | KubeRayRedeployConfig = Field(
        default_factory=ServeRedeployConfig, discriminator="kind"
    )
