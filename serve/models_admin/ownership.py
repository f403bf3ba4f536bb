"""What a model owner's key may change: its own team's models, nothing else.

A model belongs to the team named in its ``tenancy.owner_team``; a model without tenancy
belongs to the platform (admin key only). A change made with a ``model_owner`` key is
allowed when every model it adds, alters or removes belongs to the key's team, before and
after the change, and nothing outside ``models`` changes. Moving an alias away from
another team's model alters that model, so it is refused like any other change to it.
The check runs on the planned config, so it covers every kind of change (add, remove,
publish, rollback) with one rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from serve.auth.authenticator import Authenticator
from serve.errors import PermissionDenied

__all__ = ["ChangeScope", "authorize", "check_owned", "owner_of"]


@dataclass(frozen=True, slots=True)
class ChangeScope:
    """Who asks for a change: the admin key (``team`` None: anything) or a model owner."""

    team: str | None = None
    key_id: str | None = None

    def author(self, given: str) -> str:
        """The history's author: what the caller said, plus the key for a model owner."""
        if self.team is None:
            return given
        return f"{given} (model owner key {self.key_id}, team {self.team})"

    def check(self, before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
        if self.team is not None:
            check_owned(before, after, self.team)


async def authorize(
    authenticator: Authenticator, admin_key: str | None, authorization: str | None
) -> ChangeScope:
    """The admin key changes any model; a team's ``model_owner`` key only its team's;
    any other valid key is a 403, no valid key a 401."""
    principal = await authenticator.admin_or_role(
        authorization,
        admin_key,
        "model_owner",
        "Managing models needs the admin key or a model owner key.",
    )
    if principal is None:
        return ChangeScope()
    return ChangeScope(team=principal.team, key_id=principal.key_id)


def owner_of(model: Mapping[str, Any]) -> str | None:
    tenancy = model.get("tenancy") or {}
    owner = tenancy.get("owner_team")
    return str(owner) if owner is not None else None


def _by_name(config: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(m["name"]): m for m in config.get("models") or ()}


def check_owned(before: Mapping[str, Any], after: Mapping[str, Any], team: str) -> None:
    """Raise 403 unless ``before`` -> ``after`` touches only ``team``'s models."""
    rest_before = {k: v for k, v in before.items() if k != "models"}
    rest_after = {k: v for k, v in after.items() if k != "models"}
    if rest_before != rest_after:
        changed = sorted(
            k
            for k in rest_before.keys() | rest_after.keys()
            if rest_before.get(k) != rest_after.get(k)
        )
        raise PermissionDenied(
            f"A model owner key changes only its team's models; this change also alters "
            f"{changed}. Ask a platform admin.",
            code="not_model_owner",
        )
    old, new = _by_name(before), _by_name(after)
    for name in sorted(old.keys() | new.keys()):
        if old.get(name) == new.get(name):
            continue
        for model in (old.get(name), new.get(name)):
            if model is not None and owner_of(model) != team:
                owner = owner_of(model)
                whose = f"team '{owner}'" if owner is not None else "the platform"
                raise PermissionDenied(
                    f"The model '{name}' belongs to {whose}; a model owner key of team "
                    f"'{team}' changes only models with tenancy.owner_team '{team}'.",
                    code="not_model_owner",
                )
