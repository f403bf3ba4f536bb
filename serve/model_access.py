"""Which models a request may go to: a public name (model, alias, LoRA adapter
``<model>:<adapter>`` or route) resolved for one principal and task.

Pure planning over the frozen config and the route planner; no I/O. Refusals are the
gateway's own errors: 404 for an unknown name, 403 for a model the team may not use (its
allowlist, or a model dedicated to another team), 400 for a task the model does not serve.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from serve.auth.authenticator import Principal
from serve.config import ModelConfig, PlatformConfig, Task
from serve.errors import InvalidRequest, NotFound, PermissionDenied
from serve.routing import RoutePlanner

__all__ = ["ModelAccess", "Plan", "planner_for"]


@dataclass(frozen=True, slots=True)
class Plan:
    """Where a request may go: the models to try in order (primary first)."""

    requested: str
    cache_name: str  # canonical model for a model or alias; the route name for a route
    models: tuple[str, ...]
    pinned: str | None  # the model the requested name always means (None for a route)
    adapter: str | None = None  # a LoRA adapter of the (single) model: `<model>:<adapter>`

    def upstream(self, model: str) -> str:
        """The model id the engine is asked for (``<model>:<adapter>`` for an adapter)."""
        return f"{model}:{self.adapter}" if self.adapter is not None else model


class ModelAccess:
    def __init__(self, config: PlatformConfig, planner: RoutePlanner) -> None:
        self._config = config
        self._planner = planner

    def plan(self, principal: Principal, requested: str, task: Task) -> Plan:
        """Resolve a public name (model, alias or route) to the models that may answer."""
        route = self._config.route(requested)
        model = self._config.model(requested)
        if route is None and model is None:
            return self._adapter_plan(principal, requested, task)
        canonical = model.name if model is not None else requested
        if not principal.may_use(self._config, requested, canonical):
            raise PermissionDenied(
                f"Team '{principal.team}' is not allowed to use the model '{requested}'.",
                param="model",
            )
        names = self._planner.plan(requested, principal.team)
        # A route's pick or a fallback may be a model dedicated to another team: never used.
        names = tuple(
            n for n in names if (m := self._config.model(n)) is None or m.usable_by(principal.team)
        )
        if not names:
            raise PermissionDenied(
                f"Team '{principal.team}' is not allowed to use the model '{requested}'.",
                param="model",
            )
        # The primary must serve the task; fallbacks that don't are skipped.
        primary = self._config.model(names[0])
        if primary is None or task not in primary.served_tasks:
            raise InvalidRequest(
                f"The model '{requested}' does not support {task}.",
                param="model",
                code="unsupported_task",
            )
        usable = tuple(
            n for n in names if (m := self._config.model(n)) is not None and task in m.served_tasks
        )
        return Plan(requested, canonical, usable, model.name if model is not None else None)

    def _adapter_plan(self, principal: Principal, requested: str, task: Task) -> Plan:
        """``<model>:<adapter>``: a LoRA adapter of a vLLM model, served by that model's
        replicas (Ray Serve LLM multiplexing). No fallbacks: another model is not the same
        adapter. A team that may use the model may use its adapters."""
        base, _, adapter = requested.partition(":")
        model = self._config.model(base) if adapter else None
        if model is None or adapter not in _adapters(model):
            raise NotFound(f"The model '{requested}' does not exist.", param="model")
        if not principal.may_use(self._config, requested, model.name):
            raise PermissionDenied(
                f"Team '{principal.team}' is not allowed to use the model '{requested}'.",
                param="model",
            )
        if task not in model.served_tasks:
            raise InvalidRequest(
                f"The model '{requested}' does not support {task}.",
                param="model",
                code="unsupported_task",
            )
        return Plan(requested, f"{model.name}:{adapter}", (model.name,), model.name, adapter)

    def visible(self, principal: Principal, created: int) -> list[dict[str, Any]]:
        """The /v1/models entries ``principal`` may use, in config order."""
        out = []
        names = [(m.name, m.name, m.owned_by) for m in self._config.models]
        names += [
            (f"{m.name}:{a}", m.name, m.owned_by) for m in self._config.models for a in _adapters(m)
        ]
        names += [(a, m.name, m.owned_by) for m in self._config.models for a in m.aliases]
        names += [(r.name, r.name, "raygate") for r in self._config.routes]
        for name, canonical, owner in sorted(names, key=lambda n: self._order(n[0])):
            if principal.may_use(self._config, name, canonical):
                out.append({"id": name, "object": "model", "created": created, "owned_by": owner})
        return out

    def _order(self, name: str) -> int:
        for index, model in enumerate(self._config.models):
            if name == model.name or name in model.aliases or name.split(":")[0] == model.name:
                return index
        return len(self._config.models)


def planner_for(config: PlatformConfig) -> RoutePlanner:
    return RoutePlanner(
        config.routes,
        fallbacks={m.name: m.reliability.fallbacks for m in config.models},
        aliases={a: m.name for m in config.models for a in m.aliases},
    )


def _adapters(model: ModelConfig) -> tuple[str, ...]:
    adapters = getattr(model.backend, "lora_adapters", ())
    return tuple(a.name for a in adapters)
