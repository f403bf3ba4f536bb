"""Builds `ModelsAdmin` for an ingress replica from the platform config."""

from __future__ import annotations

from serve.config import PlatformConfig
from serve.models_admin.config import KubeRayRedeployConfig, ModelsAdminConfig
from serve.models_admin.redeploy import Redeployer
from serve.models_admin.service import ModelsAdmin
from serve.models_admin.versions import ConfigVersions
from serve.settings import expand_database_url, resolve_optional

__all__ = ["build_models_admin", "build_redeployer"]


def build_redeployer(settings: ModelsAdminConfig) -> Redeployer:
    redeploy = settings.redeploy
    if isinstance(redeploy, KubeRayRedeployConfig):
        from kubernetes import client, config

        from kuberay.client import RayServiceClient
        from serve.models_admin.kuberay_redeployer import KubeRayRedeployer

        if redeploy.kubeconfig is not None:
            api = config.new_client_from_config(config_file=redeploy.kubeconfig)  # type: ignore[no-untyped-call]
        else:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
            api = client.ApiClient()
        return KubeRayRedeployer(
            RayServiceClient(api, redeploy.namespace), redeploy.rayservice, redeploy.application
        )
    from serve.models_admin.serve_redeployer import ServeRedeployer

    return ServeRedeployer()


def build_models_admin(
    config: PlatformConfig, settings: ModelsAdminConfig | None = None
) -> ModelsAdmin:
    settings = settings or ModelsAdminConfig()
    url = resolve_optional(config.database.url)
    assert url is not None
    versions = ConfigVersions(expand_database_url(url), settings.table)
    return ModelsAdmin(versions, build_redeployer(settings), config.model_dump(mode="json"))
