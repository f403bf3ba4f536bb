"""What the guardrails decided, as plain data: for the gateway, audit, traces, metrics.

`Actions` is value-free by construction: entity type counts, rule names, block kinds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from guardrails.injection import InjectionVerdict
from guardrails.restore import RestoreMap
from guardrails.tool_calls import ToolCallOutcome

__all__ = ["Actions", "RequestVerdict", "ResponseVerdict"]


@dataclass(frozen=True)
class Actions:
    redacted: Mapping[str, int] = field(default_factory=dict)  # input entity type -> count
    masked: Mapping[str, int] = field(default_factory=dict)  # output entity type -> count
    flags: tuple[str, ...] = ()  # e.g. "injection:ignore_previous_instructions"
    blocks: tuple[str, ...] = ()  # e.g. "injection", "output_leakage", "tool_call"

    def to_dict(self) -> dict[str, Any]:
        return {
            "redacted": dict(sorted(self.redacted.items())),
            "masked": dict(sorted(self.masked.items())),
            "flags": list(self.flags),
            "blocks": list(self.blocks),
        }

    def merged(self, other: Actions) -> Actions:
        def add(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
            return {k: a.get(k, 0) + b.get(k, 0) for k in sorted({*a, *b})}

        return Actions(
            add(self.redacted, other.redacted),
            add(self.masked, other.masked),
            tuple(dict.fromkeys(self.flags + other.flags)),
            tuple(dict.fromkeys(self.blocks + other.blocks)),
        )


@dataclass(frozen=True)
class RequestVerdict:
    request: dict[str, Any]  # the redacted request: send this to the provider
    actions: Actions
    injection: InjectionVerdict
    restore: RestoreMap  # per request only; never log it
    system_prompt: str = ""  # as the provider saw it (for the leakage filter)
    block_reason: str | None = None  # value-free; None: go ahead

    @property
    def blocked(self) -> bool:
        return self.block_reason is not None


@dataclass(frozen=True)
class ResponseVerdict:
    response: dict[str, Any] | None  # filtered and restored; None when blocked
    actions: Actions
    tool_calls: tuple[ToolCallOutcome, ...] = ()
    block_reason: str | None = None

    @property
    def blocked(self) -> bool:
        return self.block_reason is not None
