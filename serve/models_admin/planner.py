"""The change planner: pure functions from a platform config to the next one.

Configs here are the JSON form of `PlatformConfig` (``model_dump(mode="json")``), the form
the config history stores and the ingress receives. Every result is validated as a whole
by `serve.config.parse_platform_config`, so a change that would break routes, teams,
fallbacks or aliases is refused with the config loader's own message.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from models.spec import ModelSpec
from serve.config import parse_platform_config
from serve.errors import ConfigError, InvalidRequest, NotFound
from serve.models_admin.errors import ConfigConflict

__all__ = ["add_model", "deep_merge", "publish_alias", "remove_model", "validated"]

# Overrides may tune how the spec runs, not what it is called.
_FIXED = frozenset({"name", "aliases"})


def deep_merge(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def validated(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config as the platform will run it (defaults filled in), or 400 with why not."""
    try:
        parsed = parse_platform_config(config, "new platform config")
    except ConfigError as exc:
        raise InvalidRequest(str(exc), code="invalid_config") from None
    return parsed.model_dump(mode="json")


def _models(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(m) for m in config.get("models") or ()]


def _index(models: list[dict[str, Any]], name: str) -> int:
    for index, model in enumerate(models):
        if model["name"] == name:
            return index
    raise NotFound(f"No model '{name}' in the platform config.", code="model_not_found")


def add_model(
    config: Mapping[str, Any], spec: ModelSpec, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Append the spec's platform entry (``overrides`` deep-merged into it)."""
    fixed = sorted(_FIXED & set(overrides or {}))
    if fixed:
        raise InvalidRequest(
            f"overrides may not set {fixed}: they come from the spec", param="overrides"
        )
    models = _models(config)
    taken = {n for m in models for n in (m["name"], *(m.get("aliases") or ()))}
    clash = sorted(taken & {spec.name, *spec.aliases})
    if clash:
        raise ConfigConflict(
            f"Model name or alias {clash} already exists; remove it first.", code="model_exists"
        )
    entry = deep_merge(spec.platform_model(), overrides or {})
    return validated({**config, "models": [*models, entry]})


def remove_model(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    models = _models(config)
    del models[_index(models, name)]
    return validated({**config, "models": models})


def publish_alias(config: Mapping[str, Any], name: str, alias: str) -> dict[str, Any]:
    """Point ``alias`` at model ``name``: taken from whichever model held it before."""
    models = _models(config)
    target = _index(models, name)
    if alias == name:
        raise InvalidRequest("An alias must differ from the model's name.", param="alias")
    for model in models:
        model["aliases"] = [a for a in model.get("aliases") or () if a != alias]
    models[target]["aliases"] = [*models[target]["aliases"], alias]
    return validated({**config, "models": models})
