"""The platform config as versioned changes: history, planner, redeployers (issue 6).

Modules: `config` (standalone settings, embeddable in the platform config), `versions`
(history table), `planner` (pure changes), `redeploy` (the seam) with `serve_redeployer`
and `kuberay_redeployer`, `service` (`ModelsAdmin`), `factory`. The HTTP side is
`serve.api.model_routes`; the notebook SDK is `models.client`. See docs/notebooks.md.

Only the settings are re-exported here, so `serve.config` can import them without a cycle.
"""

from __future__ import annotations

from serve.models_admin.config import (
    KubeRayRedeployConfig,
    ModelsAdminConfig,
    ServeRedeployConfig,
)

__all__ = ["KubeRayRedeployConfig", "ModelsAdminConfig", "ServeRedeployConfig"]
