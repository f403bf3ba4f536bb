"""Per-team guardrail policy: frozen pydantic models the platform config embeds as they are.

Secure by default: a team that says nothing gets every detector on, personal data
replaced by reversible placeholders (the provider never sees it; the caller gets it back),
secrets by one-way placeholders, prompt injection blocked, invalid tool calls removed,
secrets and structured personal data masked in responses, system-prompt leakage blocked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from guardrails.entities import ALL_ENTITIES, SECRET_ENTITIES, STRUCTURED_ENTITIES

__all__ = [
    "EntityAction",
    "GuardrailsPolicy",
    "InjectionPolicy",
    "OutputPolicy",
    "PiiPolicy",
    "ToolPolicy",
]


class EntityAction(StrEnum):
    MASK = "mask"  # "****"
    PLACEHOLDER = "placeholder"  # "<EMAIL_ADDRESS_1>", never restored
    REVERSIBLE = "reversible"  # "<EMAIL_ADDRESS_1>", restored in the response
    OFF = "off"  # left as it is


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_entities(names: Mapping[str, object] | tuple[str, ...]) -> None:
    unknown = sorted(set(names) - ALL_ENTITIES)
    if unknown:
        raise ValueError(
            f"unknown entity type(s) {unknown}; known: {', '.join(sorted(ALL_ENTITIES))}"
        )


class PiiPolicy(_Frozen):
    """Input redaction: what happens to each entity type before the provider sees it."""

    enabled: bool = True
    pii_action: EntityAction = EntityAction.REVERSIBLE
    secret_action: EntityAction = EntityAction.PLACEHOLDER
    # Per entity type overrides, e.g. {"PERSON": "off", "CREDIT_CARD": "mask"}.
    entities: Mapping[str, EntityAction] = Field(default_factory=dict)
    # The NER tier (GiNZA: Japanese person and place names). The pattern tier always runs.
    ner: bool = True

    @field_validator("entities")
    @classmethod
    def _known(cls, value: Mapping[str, EntityAction]) -> Mapping[str, EntityAction]:
        _check_entities(value)
        return value

    def action_for(self, entity_type: str) -> EntityAction:
        if not self.enabled:
            return EntityAction.OFF
        if entity_type in self.entities:
            return self.entities[entity_type]
        return self.secret_action if entity_type in SECRET_ENTITIES else self.pii_action


class InjectionPolicy(_Frozen):
    action: Literal["block", "flag", "off"] = "block"
    # None: the shipped classifier's threshold (chosen for <= 1% false positives on
    # held-out business text). Lower catches more attacks and flags more business text.
    threshold: float | None = Field(None, gt=0, lt=1)
    # A text with fewer content tokens (words; 2 kana/kanji = 1) needs a rule hit to be
    # blocked; the classifier alone only flags it. 0: the classifier alone blocks.
    classifier_min_tokens: int = Field(4, ge=0, le=64)
    # Heuristic rules fire regardless of the classifier score.
    heuristics: bool = True
    # Also scan tool results (indirect injection through retrieved content).
    scan_tool_results: bool = True


class ToolPolicy(_Frozen):
    # Tool names the team may let the model call (fnmatch globs); "*" is any declared tool.
    allow: tuple[str, ...] = ("*",)
    # remove: drop offending calls from the response; block: refuse the whole response.
    invalid_action: Literal["remove", "block"] = "remove"
    validate_arguments: bool = True

    @field_validator("allow")
    @classmethod
    def _non_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not pattern.strip() for pattern in value):
            raise ValueError("tool allow patterns must be non-empty strings")
        return value


class OutputPolicy(_Frozen):
    """Filters on model responses (streamed and whole)."""

    pii_action: Literal["mask", "block", "off"] = "mask"
    # Entity types looked for in responses (default: secrets and format-defined PII;
    # names and places in answers are usually not leaks).
    pii_entities: tuple[str, ...] = tuple(sorted(STRUCTURED_ENTITIES))
    leakage: bool = True
    # Share of the system prompt (its word 5-gram shingles) a response may reproduce.
    leakage_threshold: float = Field(0.5, gt=0, le=1)
    # Responses matching any of these are blocked (Python regular expressions).
    deny_patterns: tuple[str, ...] = ()
    # Most characters a stream filter holds back to catch a match split across deltas:
    # longer windows catch longer secrets but delay the first visible text (96 chars is
    # about 24 tokens; emails, cards, IBANs, phones and API keys fit).
    stream_window: int = Field(96, ge=16, le=8192)

    @field_validator("pii_entities")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        _check_entities(value)
        return value

    @field_validator("deny_patterns")
    @classmethod
    def _compilable(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for index, pattern in enumerate(value):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"deny_patterns[{index}] is not a valid regex: {exc}") from exc
            if re.compile(pattern).match(""):
                raise ValueError(f"deny_patterns[{index}] matches the empty string")
        return value


class GuardrailsPolicy(_Frozen):
    pii: PiiPolicy = PiiPolicy()
    injection: InjectionPolicy = InjectionPolicy()
    tools: ToolPolicy = ToolPolicy()
    output: OutputPolicy = OutputPolicy()
