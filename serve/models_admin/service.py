"""Model admin: a change to the platform config becomes a new version, then a redeploy.

`ModelsAdmin` runs inside an ingress replica. ``running`` is that replica's own config,
so the replica can say which version it serves (`running_version`): during a rollout old
replicas answer with the old version, new ones with the new. The first use on an empty
history records the running config as version 1.

Ordering: two changes may be committed back to back on different replicas and their
redeploys reach Serve in either order. After its redeploy returns, a change re-reads the
latest version and redeploys that if it is newer, so the platform ends on the latest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from serve.errors import NotFound
from serve.models_admin.errors import ConfigConflict, RedeployFailed
from serve.models_admin.ownership import ChangeScope
from serve.models_admin.planner import validated
from serve.models_admin.redeploy import AppStatus, Redeployer
from serve.models_admin.versions import (
    ConfigVersion,
    ConfigVersions,
    VersionConflict,
    config_digest,
)

__all__ = ["ChangeResult", "ModelsAdmin"]

log = logging.getLogger("raygate.models_admin")

Plan = Callable[[Mapping[str, Any]], dict[str, Any]]
MAX_CATCH_UP = 5
ADMIN = ChangeScope()


@dataclass(frozen=True, slots=True)
class ChangeResult:
    version: ConfigVersion
    changed: bool  # False: the config already was what the change asks for


class ModelsAdmin:
    def __init__(
        self, versions: ConfigVersions, redeployer: Redeployer, running: Mapping[str, Any]
    ) -> None:
        self.versions = versions
        self.redeployer = redeployer
        self.running = dict(running)

    @property
    def running_digest(self) -> str:
        return config_digest(self.running)

    async def current(self) -> ConfigVersion:
        latest = await self.versions.latest()
        if latest is not None:
            return latest
        try:
            return await self.versions.append(0, self.running, "raygate", "running config")
        except VersionConflict:  # another replica seeded it first
            latest = await self.versions.latest()
            assert latest is not None
            return latest

    async def running_version(self) -> int | None:
        return await self.versions.version_of(self.running_digest)

    async def change(
        self, base: int, plan: Plan, author: str, reason: str, scope: ChangeScope = ADMIN
    ) -> ChangeResult:
        """Apply ``plan`` to version ``base`` (which must be the latest) and redeploy;
        ``scope`` limits a model owner to its team's models."""
        current = await self.current()
        if base != current.version:
            raise _conflict(base, current.version)
        config = plan(current.config)
        scope.check(current.config, config)
        if config_digest(config) == current.digest:
            return ChangeResult(current, changed=False)
        try:
            record = await self.versions.append(base, config, author, reason)
        except VersionConflict as exc:
            raise _conflict(base, exc.latest) from None
        try:
            await self.deploy(record)
        except Exception as exc:
            await self.versions.discard(record.version)
            log.exception("redeploy of config version %d failed", record.version)
            raise RedeployFailed(
                f"The platform refused config version {record.version}: {exc}; nothing changed."
            ) from None
        return ChangeResult(record, changed=True)

    async def rollback(
        self,
        base: int,
        to: int | None,
        author: str,
        reason: str | None = None,
        scope: ChangeScope = ADMIN,
    ) -> ChangeResult:
        """A new version with the config of ``to`` (default: the version before ``base``)."""
        target_number = to if to is not None else base - 1
        target = await self.versions.get(target_number)
        if target is None:
            raise NotFound(f"No config version {target_number}.", code="version_not_found")

        def plan(_: Mapping[str, Any]) -> dict[str, Any]:
            return validated(target.config)

        return await self.change(
            base, plan, author, reason or f"rollback to {target_number}", scope
        )

    async def deploy(self, record: ConfigVersion) -> None:
        """Redeploy ``record``, then catch up with any newer version committed meanwhile."""
        for _ in range(MAX_CATCH_UP):
            await self.redeployer.redeploy(record.config)
            latest = await self.versions.latest()
            if latest is None or latest.version <= record.version:
                return
            record = latest

    async def status(self) -> AppStatus:
        try:
            return await self.redeployer.status()
        except Exception as exc:  # status is informative; never fail the listing for it
            log.warning("application status unavailable: %s", exc)
            return AppStatus("UNKNOWN", message=str(exc))

    async def aclose(self) -> None:
        await self.versions.aclose()


def _conflict(base: int, latest: int) -> ConfigConflict:
    return ConfigConflict(
        f"The platform config changed: this change is based on version {base}, "
        f"the latest is {latest}. Re-read it and apply the change again.",
        param="base_version",
    )
