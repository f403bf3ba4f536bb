"""FairSharePolicy: defaults, weights, capacity resolution, and what the config refuses."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from serve.fairshare import FairSharePolicy


@pytest.mark.parametrize(
    ("fields", "team", "auto", "weight", "capacity"),
    [
        ({}, "anyone", 8, 1.0, 8),
        ({"weights": {"gold": 3}}, "gold", 4, 3.0, 4),
        ({"weights": {"gold": 3}}, "other", 4, 1.0, 4),
        ({"default_weight": 0.5}, "other", 4, 0.5, 4),
        ({"capacity": 2}, "anyone", 16, 1.0, 2),
        ({}, "anyone", 0, 1.0, 1),  # a model with no replicas yet still admits one
    ],
)
def test_weights_and_capacity(
    fields: dict[str, Any], team: str, auto: int, weight: float, capacity: int
) -> None:
    policy = FairSharePolicy.model_validate(fields)
    assert policy.weight(team) == weight
    assert policy.capacity_for(auto) == capacity


def test_defaults() -> None:
    policy = FairSharePolicy()
    assert policy.enabled and policy.capacity == "auto"
    assert policy.max_wait_s == 30 and policy.lease_s == 30


@pytest.mark.parametrize(
    "fields",
    [
        {"capacity": 0},
        {"capacity": "all"},
        {"weights": {"gold": 0}},
        {"weights": {"Not A Team": 1}},
        {"max_wait_s": 0},
        {"lease_s": 0.1},
        {"max_ongoing": 4},  # unknown field
    ],
)
def test_invalid_policies_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FairSharePolicy.model_validate(fields)


def test_policies_are_frozen() -> None:
    policy = FairSharePolicy()
    with pytest.raises(ValidationError):
        policy.max_wait_s = 1  # type: ignore[misc]
