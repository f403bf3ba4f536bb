"""Routing config: field validation, approved-fallback enforcement, route cross-checks."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from serve.routing.policy import (
    EvaluationConfig,
    ReliabilityPolicy,
    RetryPolicy,
    RouteConfig,
    validate_fallbacks,
    validate_routes,
)

EVALUATIONS = [
    EvaluationConfig.model_validate(
        {
            "id": "eval-2025-05",
            "report": "s3://evals/2025-05/report.json",
            "date": "2025-05-14",
            "approved": [
                {"primary": "big", "fallback": "medium"},
                {"primary": "medium", "fallback": "big"},
            ],
        }
    ),
    EvaluationConfig.model_validate(
        {
            "id": "eval-small",
            "report": "evals/small.md",
            "approved": [{"primary": "big", "fallback": "small"}],
        }
    ),
]


def test_a_full_policy_parses_from_config_data() -> None:
    policy = ReliabilityPolicy.model_validate(
        {
            "timeout_s": 20,
            "first_token_timeout_s": 5,
            "idle_timeout_s": 10,
            "retry": {"max_attempts": 3, "base_delay_s": 0.1, "max_delay_s": 2, "jitter": "equal"},
            "breaker": {"failure_threshold": 4, "cooldown_s": 10, "half_open_probes": 2},
            "fallbacks": ["medium", "small"],
        }
    )
    assert policy.fallbacks == ("medium", "small")
    assert policy.retry.jitter == "equal" and policy.breaker.half_open_probes == 2
    assert EVALUATIONS[0].date is not None and EVALUATIONS[0].date.isoformat() == "2025-05-14"


@pytest.mark.parametrize(
    ("model", "data", "expected"),
    [
        (RetryPolicy, {"base_delay_s": 5, "max_delay_s": 1}, "must not exceed retry.max_delay_s"),
        (RetryPolicy, {"max_attempts": 0}, "max_attempts"),
        (RetryPolicy, {"jitter": "some"}, "jitter"),
        (ReliabilityPolicy, {"timeout_s": 0}, "timeout_s"),
        (ReliabilityPolicy, {"idle_timeout_s": None}, "idle_timeout_s"),
        (ReliabilityPolicy, {"fallbacks": ["a", "a"]}, "fallbacks lists 'a' twice"),
        (ReliabilityPolicy, {"retries": 3}, "Extra inputs are not permitted"),
        (ReliabilityPolicy, {"breaker": {"cooldown_s": 0}}, "breaker.cooldown_s"),
        (RouteConfig, {"name": "r", "targets": []}, "targets"),
        (RouteConfig, {"name": "r", "targets": [{"model": "m", "weight": 0}]}, "weight"),
        (
            RouteConfig,
            {"name": "r", "targets": [{"model": "m", "weight": 1}, {"model": "m", "weight": 2}]},
            "lists model 'm' twice",
        ),
        (
            RouteConfig,
            {"name": "r", "targets": [{"model": "m", "weight": 1}], "teams": {"t": []}},
            "team 't' needs at least one target",
        ),
        (RouteConfig, {"name": "Bad Name", "targets": [{"model": "m", "weight": 1}]}, "name"),
        (EvaluationConfig, {"id": "e", "approved": [{"primary": "a", "fallback": "b"}]}, "report"),
        (
            EvaluationConfig,
            {"id": "e", "report": "  ", "approved": [{"primary": "a", "fallback": "b"}]},
            "report",
        ),
        (EvaluationConfig, {"id": "e", "report": "r", "approved": []}, "approved"),
        (
            EvaluationConfig,
            {"id": "e", "report": "r", "approved": [{"primary": "a", "fallback": "a"}]},
            "cannot approve 'a' as its own fallback",
        ),
    ],
)
def test_invalid_config_is_refused_with_the_field_named(
    model: type[BaseModel], data: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    assert expected in str(info.value)


def test_config_models_are_frozen() -> None:
    policy = ReliabilityPolicy()
    with pytest.raises(ValidationError):
        policy.timeout_s = 1  # type: ignore[misc]


def test_approved_fallbacks_are_accepted() -> None:
    models = {"big": ("medium", "small"), "medium": ("big",), "small": ()}
    validate_fallbacks(models, EVALUATIONS)  # raises when refused


@pytest.mark.parametrize(
    ("models", "evaluations", "expected"),
    [
        (
            # big -> small is approved; pairs are directed, so small -> big is not
            {"big": (), "medium": (), "small": ("big",)},
            EVALUATIONS,
            [
                "fallback 'small' -> 'big' is not approved by any evaluation",
                "evaluations: 'eval-2025-05', 'eval-small'",
                "approved fallbacks for 'small': none",
            ],
        ),
        (
            {"big": ("tiny",), "tiny": ()},
            EVALUATIONS,
            [
                "fallback 'big' -> 'tiny' is not approved",
                "approved fallbacks for 'big': 'medium', 'small'",
            ],
        ),
        (
            {"big": ("medium",), "medium": ()},
            [],
            ["'big' -> 'medium' is not approved", "evaluations: none"],
        ),
        ({"big": ("big",)}, EVALUATIONS, ["model 'big' lists itself as a fallback"]),
        (
            {"big": ("medium", "medium"), "medium": ()},
            EVALUATIONS,
            ["model 'big' lists fallback 'medium' twice"],
        ),
        (
            {"big": ("ghost",), "small": ()},
            EVALUATIONS,
            ["model 'big' falls back to unknown model 'ghost'", "known models: 'big', 'small'"],
        ),
        (
            {"big": ()},
            [*EVALUATIONS, EVALUATIONS[1]],
            ["evaluation id 'eval-small' is defined twice"],
        ),
    ],
)
def test_unsafe_fallbacks_are_refused_with_a_clear_message(
    models: dict[str, tuple[str, ...]], evaluations: list[EvaluationConfig], expected: list[str]
) -> None:
    with pytest.raises(ValueError) as info:
        validate_fallbacks(models, evaluations)
    for fragment in expected:
        assert fragment in str(info.value)


def _route(name: str, *models: str, **teams: list[str]) -> RouteConfig:
    return RouteConfig.model_validate(
        {
            "name": name,
            "targets": [{"model": m, "weight": 1} for m in models],
            "teams": {t: [{"model": m, "weight": 1} for m in ms] for t, ms in teams.items()},
        }
    )


def test_valid_routes_are_accepted() -> None:
    routes = [_route("chat", "big", "small-alias", research=["medium"])]
    known = {"big", "medium", "small", "small-alias"}
    validate_routes(routes, known, teams={"research"})  # raises when refused
    validate_routes(routes, known)  # teams unchecked when not given


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        ([_route("big", "medium")], "route 'big' has the name of a model or alias"),
        ([_route("chat", "big"), _route("chat", "medium")], "route 'chat' is defined twice"),
        ([_route("chat", "ghost")], "route 'chat' targets names unknown model 'ghost'"),
        (
            [_route("chat", "big", research=["ghost"])],
            "route 'chat' team 'research' names unknown model 'ghost'",
        ),
        (
            [_route("chat", "big"), _route("other", "chat")],
            "route 'other' targets names route 'chat'",
        ),
        ([_route("chat", "big", ghosts=["big"])], "route 'chat' overrides unknown team 'ghosts'"),
    ],
)
def test_invalid_routes_are_refused(routes: list[RouteConfig], expected: str) -> None:
    with pytest.raises(ValueError) as info:
        validate_routes(routes, {"big", "medium"}, teams={"research"})
    assert expected in str(info.value)
