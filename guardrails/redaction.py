"""Replacing detected spans: masks, numbered placeholders, reversible placeholders.

A `RedactionSession` lives for one request: the same value gets the same placeholder
number everywhere in the request, and reversible values stay in its memory only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from guardrails.policy import EntityAction
from guardrails.restore import RestoreMap
from guardrails.spans import Span

__all__ = ["MASK", "RedactionSession"]

MASK = "****"


class RedactionSession:
    def __init__(self) -> None:
        self._numbers: dict[tuple[str, str], int] = {}
        self._next: Counter[str] = Counter()
        self._reversible: dict[str, str] = {}
        self.counts: Counter[str] = Counter()

    def redact(
        self, text: str, spans: Sequence[Span], action_for: Callable[[str], EntityAction]
    ) -> str:
        """Replace each span (non-overlapping, in order) by what its entity's action says."""
        pieces: list[str] = []
        cursor = 0
        for span in sorted(spans, key=lambda s: s.start):
            action = action_for(span.entity_type)
            if action is EntityAction.OFF or span.start < cursor:
                continue
            pieces.append(text[cursor : span.start])
            pieces.append(self._replacement(span.entity_type, text[span.start : span.end], action))
            self.counts[span.entity_type] += 1
            cursor = span.end
        pieces.append(text[cursor:])
        return "".join(pieces)

    def _replacement(self, entity_type: str, value: str, action: EntityAction) -> str:
        if action is EntityAction.MASK:
            return MASK
        key = (entity_type, value)
        if key not in self._numbers:
            self._next[entity_type] += 1
            self._numbers[key] = self._next[entity_type]
        placeholder = f"<{entity_type}_{self._numbers[key]}>"
        if action is EntityAction.REVERSIBLE:
            self._reversible[placeholder] = value
        return placeholder

    def restore_map(self) -> RestoreMap:
        return RestoreMap(dict(self._reversible))
