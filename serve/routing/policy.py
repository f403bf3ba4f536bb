"""Routing and reliability config: validated, frozen, and refused early when unsafe.

These models are fields of the platform config (the lead wires them in); they do not
import `serve.config`, so the config can import them. Cross-model rules that need the
whole config (which models exist, which fallbacks an evaluation approved) are the
functions `validate_fallbacks` and `validate_routes`, called from the platform config's
own validator so a bad file fails at load with the offending pair named.

A fallback serves a request with a different model than the caller asked for, so it is
allowed only along a (primary, fallback) pair that an evaluation approved, and the
evaluation must point at its report. Fallbacks are not transitive: if a -> b and b -> c
are approved, a request for a tries a then b, never c (a -> c was not evaluated). Hence
mutual fallbacks (a -> b, b -> a) are fine and no chain can loop.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

__all__ = [
    "ApprovedPair",
    "BreakerPolicy",
    "EvaluationConfig",
    "ReliabilityPolicy",
    "RetryPolicy",
    "RouteConfig",
    "WeightedTarget",
    "validate_fallbacks",
    "validate_routes",
]

# The platform config's name rule (kept in step with serve.config.Name by hand: importing
# it would make the config and this package import each other).
Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RetryPolicy(_Frozen):
    """Retries on one model, before moving to its fallback.

    The n-th retry waits ``min(max_delay_s, base_delay_s * 2**(n-1))``, jittered: "full"
    draws uniformly from [0, that] (spreads a thundering herd best), "equal" from
    [half, that], "none" waits exactly that. A ``retry-after`` from the backend replaces
    the computed wait when it is at most ``max_delay_s``; a longer one ends the attempts
    on this model (its fallback, if any, is tried at once).
    """

    max_attempts: int = Field(2, ge=1, le=10, description="Tries per model, the first included.")
    base_delay_s: float = Field(0.2, ge=0, le=60)
    max_delay_s: float = Field(4.0, ge=0, le=300)
    jitter: Literal["full", "equal", "none"] = "full"

    @model_validator(mode="after")
    def _ordered(self) -> RetryPolicy:
        if self.base_delay_s > self.max_delay_s:
            raise ValueError(
                f"retry.base_delay_s ({self.base_delay_s}) must not exceed "
                f"retry.max_delay_s ({self.max_delay_s})"
            )
        return self


class BreakerPolicy(_Frozen):
    """Per-backend circuit breaker: a dead backend is skipped instead of waited for.

    ``failure_threshold`` consecutive failures open it; after ``cooldown_s`` up to
    ``half_open_probes`` requests at once may try the backend; one success closes it,
    a failed probe opens it for another cool-down.
    """

    failure_threshold: int = Field(5, ge=1, le=1000)
    cooldown_s: float = Field(30.0, gt=0, le=3600)
    half_open_probes: int = Field(1, ge=1, le=100)


class ReliabilityPolicy(_Frozen):
    """How one model is called: time limits, retries, breaker, approved fallbacks.

    Every limit is finite on purpose: a request must never hang on a stuck backend.
    ``timeout_s`` bounds one non-streaming attempt; a stream gets ``first_token_timeout_s``
    for its first chunk and then ``idle_timeout_s`` between chunks (a long answer that keeps
    flowing is never cut). A timed-out model is not retried: its fallback is tried next.
    """

    timeout_s: float = Field(120.0, gt=0, le=3600)
    first_token_timeout_s: float = Field(60.0, gt=0, le=3600)
    idle_timeout_s: float = Field(30.0, gt=0, le=3600)
    retry: RetryPolicy = RetryPolicy()
    breaker: BreakerPolicy = BreakerPolicy()
    fallbacks: tuple[Name, ...] = Field(
        (), description="Models to try, in order, when this one fails; each pair approved."
    )

    @model_validator(mode="after")
    def _distinct_fallbacks(self) -> ReliabilityPolicy:
        seen: set[str] = set()
        for name in self.fallbacks:
            if name in seen:
                raise ValueError(f"fallbacks lists {name!r} twice")
            seen.add(name)
        return self


class WeightedTarget(_Frozen):
    model: Name
    weight: float = Field(gt=0, le=1_000_000, description="Relative share of requests.")


def _distinct_targets(targets: Sequence[WeightedTarget], where: str) -> None:
    seen: set[str] = set()
    for target in targets:
        if target.model in seen:
            raise ValueError(f"{where} lists model {target.model!r} twice; merge the weights")
        seen.add(target.model)


class RouteConfig(_Frozen):
    """A routed name: requests for ``name`` go to one of ``targets`` by weight.

    ``teams`` overrides the split for the named teams (a canary for one team, a pinned
    model for another). The chosen model's own approved fallbacks apply after it.
    """

    name: Name
    targets: tuple[WeightedTarget, ...] = Field(min_length=1)
    teams: Mapping[Name, tuple[WeightedTarget, ...]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _well_formed(self) -> RouteConfig:
        _distinct_targets(self.targets, f"route {self.name!r} targets")
        for team, targets in self.teams.items():
            if not targets:
                raise ValueError(f"route {self.name!r} team {team!r} needs at least one target")
            _distinct_targets(targets, f"route {self.name!r} team {team!r}")
        return self

    def targets_for(self, team: str | None) -> tuple[WeightedTarget, ...]:
        if team is not None and team in self.teams:
            return self.teams[team]
        return self.targets


class ApprovedPair(_Frozen):
    primary: Name
    fallback: Name

    @model_validator(mode="after")
    def _distinct(self) -> ApprovedPair:
        if self.primary == self.fallback:
            raise ValueError(f"an evaluation cannot approve {self.primary!r} as its own fallback")
        return self


class EvaluationConfig(_Frozen):
    """An evaluation that showed ``fallback`` answers well enough in place of ``primary``.

    ``report`` (a URI or path to the result) is required: an approval nobody can look up
    is not an approval.
    """

    id: Name
    report: Text
    approved: tuple[ApprovedPair, ...] = Field(min_length=1)
    date: dt.date | None = None


def _names(names: Collection[str]) -> str:
    return ", ".join(repr(n) for n in sorted(names)) or "none"


def validate_fallbacks(
    models: Mapping[str, Sequence[str]], evaluations: Sequence[EvaluationConfig]
) -> None:
    """Refuse any fallback that no evaluation approved, or that names no known model.

    ``models`` maps every configured model to its fallbacks, in order. Raises
    `ValueError` naming the first offending pair and the evaluations that exist.
    """
    approvals: dict[tuple[str, str], list[str]] = {}
    ids: set[str] = set()
    for evaluation in evaluations:
        if evaluation.id in ids:
            raise ValueError(f"evaluation id {evaluation.id!r} is defined twice")
        ids.add(evaluation.id)
        for pair in evaluation.approved:
            approvals.setdefault((pair.primary, pair.fallback), []).append(evaluation.id)
    for model, fallbacks in models.items():
        seen: set[str] = set()
        for fallback in fallbacks:
            if fallback == model:
                raise ValueError(f"model {model!r} lists itself as a fallback")
            if fallback in seen:
                raise ValueError(f"model {model!r} lists fallback {fallback!r} twice")
            seen.add(fallback)
            if fallback not in models:
                raise ValueError(
                    f"model {model!r} falls back to unknown model {fallback!r} "
                    f"(known models: {_names(models)})"
                )
            if (model, fallback) not in approvals:
                approved_here = [f for (p, f) in approvals if p == model]
                raise ValueError(
                    f"fallback {model!r} -> {fallback!r} is not approved by any evaluation "
                    f"(evaluations: {_names(ids)}; approved fallbacks for {model!r}: "
                    f"{_names(approved_here)}); add the pair to the evaluation that tested it"
                )


def validate_routes(
    routes: Sequence[RouteConfig],
    models: Collection[str],
    teams: Collection[str] | None = None,
) -> None:
    """Refuse routes that shadow a model, repeat a name, or target unknown models or teams.

    ``models`` holds every model name and alias; ``teams``, when given, the known teams.
    """
    names: set[str] = set()
    for route in routes:
        if route.name in models:
            raise ValueError(f"route {route.name!r} has the name of a model or alias")
        if route.name in names:
            raise ValueError(f"route {route.name!r} is defined twice")
        names.add(route.name)
    for route in routes:
        splits = {"targets": route.targets, **{f"team {t!r}": ts for t, ts in route.teams.items()}}
        for where, targets in splits.items():
            for target in targets:
                if target.model in names:
                    raise ValueError(
                        f"route {route.name!r} {where} names route {target.model!r}; "
                        "routes target models, not other routes"
                    )
                if target.model not in models:
                    raise ValueError(
                        f"route {route.name!r} {where} names unknown model {target.model!r} "
                        f"(known models: {_names(models)})"
                    )
        if teams is not None:
            for team in route.teams:
                if team not in teams:
                    raise ValueError(f"route {route.name!r} overrides unknown team {team!r}")
