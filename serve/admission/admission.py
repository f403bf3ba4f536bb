"""The admission stage: limits and budgets checked and reserved before a backend call,
settled with the real usage after it.

For each request: the team's and the key's sliding-window limits (requests and tokens per
minute), their concurrency limits, and the team's and the project's monthly budgets, all in
one atomic store call (`AdmissionStore.admit`). Tokens are reserved from upper bounds
(`serve.admission.estimate`) and money from the worst case at the model's current price;
`settle` replaces both with the real usage, on every path (answer, error, cancel). A
refusal is a 429 with ``Retry-After`` and the ``x-ratelimit-*`` headers.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from models.pricing import Price
from serve.admission.alerts import BudgetAlerts, BudgetScope
from serve.admission.checks import NANO, Budget, Check, CheckState, Concurrency, Window
from serve.admission.estimate import output_tokens, prompt_tokens
from serve.admission.memory_store import MemoryAdmissionStore
from serve.admission.policy import AdmissionPolicy, BudgetPolicy, LimitPolicy
from serve.admission.store import AdmissionStore
from serve.errors import Overloaded, RateLimited

__all__ = ["Admission", "BudgetExceeded", "TeamLimits", "Ticket"]

log = logging.getLogger("raygate.admission")

_RECHECK_S = 1.0  # how long a replica stops asking a failed shared state


class BudgetExceeded(RateLimited):
    type = "insufficient_quota"
    default_code = "insufficient_quota"


_NO_LIMITS = LimitPolicy()


@dataclass(frozen=True, slots=True)
class TeamLimits:
    """What admission needs of one team's config."""

    limits: LimitPolicy = _NO_LIMITS  # the whole team together
    key_limits: LimitPolicy = _NO_LIMITS  # each key (a key's own override wins)
    budget: BudgetPolicy | None = None
    projects: Mapping[str, BudgetPolicy] = field(default_factory=dict)


@dataclass(slots=True)
class Ticket:
    rid: str
    checks: tuple[Check, ...]
    store: AdmissionStore | None
    output_tokens: int  # the most the request may produce (sent upstream as max_tokens)
    headers: dict[str, str]
    budgets: tuple[tuple[int, BudgetScope], ...] = ()
    settled: bool = False
    cost_usd: float = 0.0

    @property
    def bounds_output(self) -> bool:
        """Whether a reservation rests on the output bound (token limits, budgets)."""
        return any(
            isinstance(c, Budget) or (isinstance(c, Window) and c.unit == "tokens")
            for c in self.checks
        )


class Admission:
    def __init__(
        self,
        policy: AdmissionPolicy,
        teams: Mapping[str, TeamLimits],
        key_limits: Mapping[str, LimitPolicy],
        store: AdmissionStore,
        *,
        shared: bool,
        alerts: BudgetAlerts | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self._teams = teams
        self._key_limits = key_limits  # key id -> override
        self._store = store
        self._shared = shared  # store is Redis (may fail); else memory
        self._fallback = MemoryAdmissionStore()
        self._alerts = alerts
        self._clock = clock
        self.state_failures = 0
        self._down_until = 0.0  # after a failure, don't wait on the store again until then

    def output_tokens(self, request: Mapping[str, Any]) -> int:
        return output_tokens(request, self.policy.default_max_tokens)

    async def admit(
        self,
        team: str,
        key_id: str | None,
        request: Mapping[str, Any],
        prices: Sequence[Price],
        project: str | None = None,
        *,
        with_output: bool = True,
    ) -> Ticket:
        limits = self._teams.get(team, TeamLimits())
        out = self.output_tokens(request) if with_output else 0
        prompt = prompt_tokens(request)
        tokens = out + (prompt if self.policy.tpm_counts == "input_and_output" else 0)
        checks: list[Check] = []
        scopes: list[tuple[str, LimitPolicy]] = [(f"team:{team}", limits.limits)]
        if key_id is not None:
            own = self._key_limits.get(key_id)
            scopes.append(
                (f"key:{key_id}", own.over(limits.key_limits) if own else limits.key_limits)
            )
        for scope, policy in scopes:
            if policy.rpm is not None:
                checks.append(Window(f"rl:{scope}:req", policy.rpm, 1, "requests"))
            if policy.tpm is not None:
                checks.append(Window(f"rl:{scope}:tok", policy.tpm, tokens, "tokens"))
            if policy.concurrent is not None:
                checks.append(Concurrency(f"rl:{scope}:conc", policy.concurrent))
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        period, left = _month(now)
        worst = math.ceil(max((p.cost(prompt, out) for p in prices), default=0.0) * NANO)
        budgets: list[tuple[int, BudgetScope]] = []
        owned: list[tuple[str | None, BudgetPolicy | None]] = [(None, limits.budget)]
        if project is not None and project in limits.projects:
            owned.append((project, limits.projects[project]))
        for tag, budget in owned:
            if budget is None:
                continue
            key = f"budget:{team}:{tag or '-'}:{period}"
            budgets.append((len(checks), BudgetScope(team, tag, period, budget)))
            checks.append(
                Budget(key, round(budget.monthly_usd * NANO), worst, budget.mode == "hard", left)
            )
        rid = uuid.uuid4().hex
        if not checks:
            return Ticket(rid, (), None, out, {})
        store = self._store
        try:
            if self._clock() < self._down_until:
                raise ConnectionError("shared state marked down after a recent failure")
            verdict = await store.admit(rid, checks, self.policy.lease_s)
        except (RedisError, OSError) as exc:
            self.state_failures += 1
            self._down_until = self._clock() + _RECHECK_S
            if self.policy.on_state_unavailable == "fail_closed":
                log.error("admission state unavailable, refusing (fail_closed): %s", exc)
                raise Overloaded(
                    "Rate limiting is temporarily unavailable; please retry shortly.",
                    code="limits_unavailable",
                    headers={"retry-after": "1"},
                ) from None
            log.warning("admission state unavailable, local limits (fail_open): %s", exc)
            store = self._fallback
            local = f"key:{key_id}" if key_id is not None else f"team:{team}"
            checks = [Window(f"rl:{local}:req", self.policy.fail_open_rpm, 1, "requests")]
            budgets = []
            verdict = await store.admit(rid, checks, self.policy.lease_s)
        headers = _headers(checks, verdict.states)
        if not verdict.admitted:
            assert verdict.failed is not None
            raise _refusal(checks[verdict.failed], verdict.retry_after_s, headers, team, key_id)
        return Ticket(rid, tuple(checks), store, out, headers, tuple(budgets))

    async def settle(
        self,
        ticket: Ticket,
        price: Price | None,
        input_tokens: int,
        output_tokens: int,
        cached_tokens: int = 0,
    ) -> float:
        """Replace the reservations with the real usage at the price of the model that
        answered (None: no model did); returns the cost in USD. Only the first call counts."""
        if ticket.settled:
            return ticket.cost_usd
        ticket.settled = True
        if price is not None:
            ticket.cost_usd = price.cost(input_tokens, output_tokens, cached_tokens)
        if ticket.store is None:
            return ticket.cost_usd
        used = output_tokens + (input_tokens if self.policy.tpm_counts == "input_and_output" else 0)
        cost = math.ceil(ticket.cost_usd * NANO)
        actual = [cost if isinstance(c, Budget) else used for c in ticket.checks]
        try:
            totals = await ticket.store.settle(ticket.rid, ticket.checks, actual)
        except (RedisError, OSError):
            self.state_failures += 1
            log.error("settlement of %s failed; its leases expire on their own", ticket.rid)
            return ticket.cost_usd
        if self._alerts is not None:
            for index, scope in ticket.budgets:
                await self._alerts.settled(scope, totals[index])
        return ticket.cost_usd

    async def drain_alerts(self) -> None:
        """Wait (bounded) for alert deliveries in flight."""
        if self._alerts is not None:
            await self._alerts.drain()

    async def aclose(self) -> None:
        if self._alerts is not None:
            await self._alerts.aclose()


def _month(now: dt.datetime) -> tuple[str, float]:
    """The budget period (calendar month, UTC) and the seconds until it ends."""
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    return now.strftime("%Y-%m"), (end - now).total_seconds()


def _duration(seconds: float) -> str:
    """OpenAI's reset format: ``1s``, ``6m0s``, ``1.5s``."""
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{rest}s"


def _headers(checks: Sequence[Check], states: Sequence[CheckState]) -> dict[str, str]:
    """x-ratelimit-* for requests and tokens: the tightest of the team's and the key's."""
    headers: dict[str, str] = {}
    for unit in ("requests", "tokens"):
        windows = [
            s
            for c, s in zip(checks, states, strict=False)
            if isinstance(c, Window) and c.unit == unit
        ]
        if windows:
            tight = min(windows, key=lambda s: s.remaining)
            headers[f"x-ratelimit-limit-{unit}"] = str(tight.limit)
            headers[f"x-ratelimit-remaining-{unit}"] = str(tight.remaining)
            headers[f"x-ratelimit-reset-{unit}"] = _duration(tight.reset_s)
    return headers


def _refusal(
    check: Check, retry_s: float, headers: dict[str, str], team: str, key_id: str | None
) -> RateLimited:
    retry = {**headers, "retry-after": str(max(1, math.ceil(retry_s)))}
    scope = f"key '{key_id}'" if ":key:" in check.key else f"team '{team}'"
    if isinstance(check, Budget):
        which = "project budget" if check.key.split(":")[2] != "-" else "monthly budget"
        return BudgetExceeded(
            f"The {which} of team '{team}' does not cover this request "
            f"(worst case {check.amount / NANO:.6f} USD).",
            headers=retry,
        )
    if isinstance(check, Concurrency):
        return RateLimited(
            f"Too many concurrent requests for {scope}: limit {check.limit}.",
            code="concurrency_limit_exceeded",
            headers=retry,
        )
    what = "requests" if check.unit == "requests" else "tokens"
    return RateLimited(
        f"Rate limit reached for {scope} on {what} per minute: limit {check.limit}, "
        f"this request needs {check.amount}. Retry after {retry['retry-after']}s.",
        code="rate_limit_exceeded",
        headers=retry,
    )
