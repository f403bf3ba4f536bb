"""Which models a request tries, in order: the routed primary, then its approved fallbacks.

The planner only decides; the executor calls. A plan names canonical models (aliases
resolved), so the executor's policies, breakers and the gateway's engines are all keyed
by the same name.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence

from serve.routing.policy import RouteConfig

__all__ = ["Plan", "RoutePlanner"]

Plan = tuple[str, ...]


class RoutePlanner:
    """``plan(name, team)``: the weighted pick for a routed name, then its fallbacks.

    A routed name uses the team's override split if the team has one, else the default
    split. A model name or alias is its own primary (aliases resolved). A name the planner
    does not know passes through as a one-model plan, so the gateway's own lookup answers
    it (404, 403) exactly as without routing.
    """

    def __init__(
        self,
        routes: Iterable[RouteConfig] = (),
        fallbacks: Mapping[str, Sequence[str]] | None = None,
        aliases: Mapping[str, str] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._routes = {route.name: route for route in routes}
        self._fallbacks = {name: tuple(chain) for name, chain in (fallbacks or {}).items()}
        self._aliases = dict(aliases or {})
        self._rng = rng or random.Random()

    def canonical(self, name: str) -> str:
        return self._aliases.get(name, name)

    def primary(self, requested: str, team: str | None = None) -> str:
        route = self._routes.get(requested)
        if route is None:
            return self.canonical(requested)
        targets = route.targets_for(team)
        if len(targets) == 1:
            return self.canonical(targets[0].model)
        choice = self._rng.choices(targets, weights=[t.weight for t in targets])[0]
        return self.canonical(choice.model)

    def plan(self, requested: str, team: str | None = None) -> Plan:
        """The primary, then its approved fallbacks in order, each model at most once.

        Fallbacks are the primary's own: a fallback's fallbacks are not followed, since
        only (primary, fallback) pairs were evaluated.
        """
        primary = self.primary(requested, team)
        plan = [primary]
        for fallback in self._fallbacks.get(primary, ()):
            name = self.canonical(fallback)
            if name not in plan:
                plan.append(name)
        return tuple(plan)
