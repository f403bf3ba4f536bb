"""Route planning: weighted splits, per-team overrides, aliases, approved fallbacks."""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Any

import pytest

from serve.routing.plan import RoutePlanner
from serve.routing.policy import RouteConfig


def route(name: str, targets: dict[str, float], **teams: dict[str, float]) -> RouteConfig:
    def split(weights: dict[str, float]) -> list[dict[str, Any]]:
        return [{"model": m, "weight": w} for m, w in weights.items()]

    return RouteConfig.model_validate(
        {"name": name, "targets": split(targets), "teams": {t: split(w) for t, w in teams.items()}}
    )


def binomial_tolerance(share: float, draws: int) -> float:
    """Five standard deviations of an observed share: a correct split never misses it."""
    return 5 * math.sqrt(share * (1 - share) / draws)


def shares(planner: RoutePlanner, name: str, team: str | None, draws: int) -> dict[str, float]:
    counts = Counter(planner.primary(name, team) for _ in range(draws))
    return {model: count / draws for model, count in counts.items()}


@pytest.mark.parametrize(
    "weights",
    [
        {"stable": 90, "canary": 10},
        {"a": 1, "b": 1, "c": 2},
        {"big": 0.99, "tiny": 0.01},
    ],
)
@pytest.mark.parametrize("seed", [1, 2])
def test_weighted_split_matches_the_weights(weights: dict[str, float], seed: int) -> None:
    planner = RoutePlanner([route("chat", weights)], rng=random.Random(seed))
    observed = shares(planner, "chat", None, 20_000)
    total = sum(weights.values())
    assert set(observed) == set(weights)
    for model, weight in weights.items():
        expected = weight / total
        assert observed[model] == pytest.approx(expected, abs=binomial_tolerance(expected, 20_000))


def test_team_override_replaces_the_split_for_that_team_only() -> None:
    planner = RoutePlanner(
        [route("chat", {"stable": 1}, research={"canary": 3, "stable": 1}, pinned={"old": 1})],
        rng=random.Random(7),
    )
    assert shares(planner, "chat", "pinned", 200) == {"old": 1.0}
    assert shares(planner, "chat", "anyone-else", 200) == {"stable": 1.0}
    assert shares(planner, "chat", None, 200) == {"stable": 1.0}
    research = shares(planner, "chat", "research", 20_000)
    assert research["canary"] == pytest.approx(0.75, abs=binomial_tolerance(0.75, 20_000))


def test_primary_is_followed_by_its_fallbacks_in_order() -> None:
    planner = RoutePlanner(
        [route("chat-default", {"big": 1})],
        fallbacks={"big": ("medium", "small"), "medium": ("small",)},
    )
    assert planner.plan("chat-default") == ("big", "medium", "small")
    assert planner.plan("medium") == ("medium", "small")
    assert planner.plan("small") == ("small",)


def test_fallbacks_are_not_transitive() -> None:
    # b -> c was evaluated for b, not for a: a request for a never lands on c.
    planner = RoutePlanner(fallbacks={"a": ("b",), "b": ("c",)})
    assert planner.plan("a") == ("a", "b")


def test_mutual_fallbacks_do_not_loop() -> None:
    planner = RoutePlanner(fallbacks={"east": ("west",), "west": ("east",)})
    assert planner.plan("east") == ("east", "west")
    assert planner.plan("west") == ("west", "east")


def test_aliases_resolve_to_the_model_and_each_model_appears_once() -> None:
    planner = RoutePlanner(
        [route("chat", {"fast-alias": 1})],
        fallbacks={"fast": ("slow", "slow-alias")},
        aliases={"fast-alias": "fast", "slow-alias": "slow"},
    )
    assert planner.plan("fast-alias") == ("fast", "slow")
    assert planner.plan("chat") == ("fast", "slow")


def test_unknown_names_pass_through_for_the_gateway_to_answer() -> None:
    assert RoutePlanner().plan("no-such-model", "team") == ("no-such-model",)
