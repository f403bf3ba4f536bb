"""Apply and inspect the raygate RayService through the Kubernetes API.

``apply`` uses server-side apply (``application/apply-patch+yaml``, field manager
``raygate``, forced): one call creates or updates each manifest, and fields dropped from
the render are removed, so the rendered manifests stay the source of truth.
``patch_serve_config`` merge-patches only ``spec.serveConfigV2`` (the notebook path), so the
cluster spec is never rewritten from a stale copy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import yaml
from kubernetes import client as k8s

__all__ = [
    "ApplicationStatus",
    "KubeRayError",
    "RayServiceClient",
    "RayServiceStatus",
]

GROUP, VERSION, PLURAL = "ray.io", "v1", "rayservices"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"


class KubeRayError(RuntimeError):
    """The Kubernetes API refused a request; the message is the API's own Status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(exc: k8s.ApiException, what: str) -> KubeRayError:
    message = exc.reason or "error"
    try:
        body = json.loads(exc.body or "")
        message = body.get("message") or message
    except (ValueError, AttributeError):
        pass
    return KubeRayError(int(exc.status or 0), f"{what}: {exc.status} {message}")


@dataclass(frozen=True)
class ApplicationStatus:
    status: str
    message: str = ""
    deployments: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RayServiceStatus:
    name: str
    service_status: str
    ready: str  # the Ready condition: True, False or Unknown
    upgrading: bool
    active_cluster: str | None
    pending_cluster: str | None
    applications: Mapping[str, ApplicationStatus]

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> RayServiceStatus:
        status = obj.get("status") or {}
        conditions = {c.get("type"): c for c in status.get("conditions") or ()}
        active = status.get("activeServiceStatus") or {}
        pending = status.get("pendingServiceStatus") or {}
        apps = {
            name: ApplicationStatus(
                status=str(app.get("status", "")),
                message=str(app.get("message", "")),
                deployments={
                    d: str(s.get("status", ""))
                    for d, s in (app.get("serveDeploymentStatuses") or {}).items()
                },
            )
            for name, app in (active.get("applicationStatuses") or {}).items()
        }
        return cls(
            name=str(obj.get("metadata", {}).get("name", "")),
            service_status=str(status.get("serviceStatus") or "Pending"),
            ready=str(conditions.get("Ready", {}).get("status", "Unknown")),
            upgrading=conditions.get("UpgradeInProgress", {}).get("status") == "True",
            active_cluster=active.get("rayClusterName") or None,
            pending_cluster=pending.get("rayClusterName") or None,
            applications=apps,
        )

    def lines(self) -> list[str]:
        out = [
            f"rayservice {self.name}: {self.service_status} (ready: {self.ready}"
            + (", upgrade in progress)" if self.upgrading else ")"),
            f"active cluster: {self.active_cluster or '-'}",
            f"pending cluster: {self.pending_cluster or '-'}",
        ]
        for name, app in sorted(self.applications.items()):
            out.append(
                f"application {name}: {app.status}" + (f" ({app.message})" if app.message else "")
            )
            out += [f"  deployment {d}: {s}" for d, s in sorted(app.deployments.items())]
        return out


class RayServiceClient:
    def __init__(
        self, api_client: k8s.ApiClient, namespace: str, field_manager: str = "raygate"
    ) -> None:
        self.namespace = namespace
        self.field_manager = field_manager
        self._custom = k8s.CustomObjectsApi(api_client)
        self._core = k8s.CoreV1Api(api_client)

    def apply(self, manifests: Sequence[Mapping[str, Any]]) -> list[str]:
        """Server-side apply each manifest in order; returns ``Kind/name`` of each."""
        applied = []
        for manifest in manifests:
            body = dict(manifest)
            kind, name = body["kind"], body["metadata"]["name"]
            namespace = body["metadata"].get("namespace", self.namespace)
            options: dict[str, Any] = {
                "field_manager": self.field_manager,
                "force": True,
                "_content_type": APPLY,
            }
            try:
                if kind == "RayService":
                    self._custom.patch_namespaced_custom_object(
                        GROUP, VERSION, namespace, PLURAL, name, body, **options
                    )
                elif kind == "ServiceAccount":
                    self._core.patch_namespaced_service_account(name, namespace, body, **options)
                elif kind == "ConfigMap":
                    self._core.patch_namespaced_config_map(name, namespace, body, **options)
                elif kind == "Service":
                    self._core.patch_namespaced_service(name, namespace, body, **options)
                else:
                    raise ValueError(f"cannot apply a {kind}")
            except k8s.ApiException as exc:
                raise _error(exc, f"apply {kind}/{name}") from None
            applied.append(f"{kind}/{name}")
        return applied

    def get(self, name: str) -> dict[str, Any] | None:
        """The RayService, or None when it does not exist."""
        try:
            obj = self._custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name
            )
        except k8s.ApiException as exc:
            if exc.status == 404:
                return None
            raise _error(exc, f"get RayService/{name}") from None
        return cast(dict[str, Any], obj)

    def status(self, name: str) -> RayServiceStatus:
        try:
            obj = self._custom.get_namespaced_custom_object_status(
                GROUP, VERSION, self.namespace, PLURAL, name
            )
        except k8s.ApiException as exc:
            raise _error(exc, f"status of RayService/{name}") from None
        return RayServiceStatus.from_object(cast(dict[str, Any], obj))

    def patch_serve_config(
        self,
        name: str,
        serve_config: Mapping[str, Any] | str,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        """Replace only ``spec.serveConfigV2`` (a Serve deploy config, dict or YAML).

        With ``resource_version`` (the object's ``metadata.resourceVersion`` when it was
        read) the API server applies the patch only to that version: a write by anyone
        else in between is a 409 (`KubeRayError.status`), never silently overwritten."""
        text = (
            serve_config
            if isinstance(serve_config, str)
            else yaml.safe_dump(dict(serve_config), sort_keys=False)
        )
        body: dict[str, Any] = {"spec": {"serveConfigV2": text}}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            obj = self._custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                name,
                body,
                field_manager=self.field_manager,
                _content_type=MERGE,
            )
        except k8s.ApiException as exc:
            raise _error(exc, f"patch serveConfigV2 of RayService/{name}") from None
        return cast(dict[str, Any], obj)
