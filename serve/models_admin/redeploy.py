"""The seam between a config change and the running platform.

`serve_redeployer.ServeRedeployer` (local Ray: Serve's own API) and
`kuberay_redeployer.KubeRayRedeployer` (patch the RayService's ``serveConfigV2``) are the
implementations. ``redeploy`` returns once the platform accepted the new config; the
rollout (new ingress replicas, new model deployments) continues and `status` reports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["AppStatus", "Redeployer"]


@dataclass(frozen=True, slots=True)
class AppStatus:
    """The raygate application as Serve reports it: RUNNING, DEPLOYING, DEPLOY_FAILED,
    ...; deployments map to HEALTHY, UPDATING, UNHEALTHY, ..."""

    status: str
    deployments: Mapping[str, str] = field(default_factory=dict)
    message: str = ""

    def public(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "message": self.message,
            "deployments": dict(self.deployments),
        }


class Redeployer(Protocol):
    async def redeploy(self, platform: Mapping[str, Any]) -> None:
        """Deploy the raygate application with ``platform`` as its args; other
        applications keep running untouched."""
        ...

    async def status(self) -> AppStatus: ...
