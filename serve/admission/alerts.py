"""Budget alerts: one webhook POST per threshold per period, across every replica.

The threshold is claimed in the shared state (set-if-absent) before the POST, so however
many replicas settle requests at once, one alert goes out. Delivery runs in the
background with retries; a request never waits for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from serve.admission.checks import NANO
from serve.admission.policy import AlertPolicy, BudgetPolicy
from serve.state.protocol import StateStore

__all__ = ["BudgetAlerts", "BudgetScope"]

log = logging.getLogger("raygate.alerts")

_CLAIM_TTL_S = 40 * 24 * 3600


@dataclass(frozen=True, slots=True)
class BudgetScope:
    team: str
    project: str | None
    period: str  # YYYY-MM
    policy: BudgetPolicy


class BudgetAlerts:
    def __init__(self, state: StateStore, policy: AlertPolicy, url: str | None) -> None:
        self._state = state
        self._policy = policy
        self._url = url
        self._client = httpx.AsyncClient(timeout=policy.timeout_s) if url else None
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.failed = 0

    async def settled(self, scope: BudgetScope, spent_nano: int) -> None:
        """Called after a settlement with the scope's new total: claim and send any threshold
        it crossed. Never raises."""
        cap = scope.policy.monthly_usd * NANO
        for threshold in sorted(scope.policy.alerts):
            if spent_nano < threshold * cap:
                break
            claim = f"alert:{scope.team}:{scope.project or '-'}:{scope.period}:{threshold}"
            try:
                if not await self._state.set_if_absent(claim, b"1", ttl_s=_CLAIM_TTL_S):
                    continue
            except Exception:
                log.warning("budget alert claim failed for %s", claim, exc_info=True)
                continue
            payload = {
                "type": "raygate.budget.threshold",
                "team": scope.team,
                "project": scope.project,
                "period": scope.period,
                "threshold": threshold,
                "spent_usd": round(spent_nano / NANO, 6),
                "budget_usd": scope.policy.monthly_usd,
                "mode": scope.policy.mode,
            }
            log.warning(
                "budget %s/%s at %.0f%% of %s USD",
                scope.team,
                scope.project or "-",
                threshold * 100,
                scope.policy.monthly_usd,
            )
            task = asyncio.create_task(self._post(payload))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _post(self, payload: Mapping[str, object]) -> None:
        if self._client is None or self._url is None:
            return
        for attempt in range(self._policy.attempts):
            try:
                response = await self._client.post(self._url, json=payload)
                if response.status_code < 300:
                    self.sent += 1
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(min(0.2 * 2**attempt, 5.0))
        self.failed += 1
        log.error("budget alert for %s could not be delivered", payload["team"])

    async def drain(self, timeout_s: float = 10.0) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    async def aclose(self) -> None:
        await self.drain()
        if self._client is not None:
            await self._client.aclose()
