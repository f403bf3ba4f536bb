"""Putting reversible values back into a response, whole or as a stream of deltas."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["RestoreMap", "StreamRestorer"]


@dataclass(frozen=True)
class RestoreMap:
    """Placeholder -> original value, for one request only. Never log or persist it."""

    values: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        pattern = "|".join(re.escape(p) for p in sorted(self.values, key=len, reverse=True))
        object.__setattr__(self, "_pattern", re.compile(pattern) if pattern else None)

    def __bool__(self) -> bool:
        return bool(self.values)

    def __repr__(self) -> str:  # the values are the caller's personal data
        return f"RestoreMap({len(self.values)} placeholders)"

    @property
    def longest(self) -> int:
        return max((len(p) for p in self.values), default=0)

    def restore(self, text: str) -> str:
        pattern: re.Pattern[str] | None = getattr(self, "_pattern")  # noqa: B009
        if pattern is None:
            return text
        return pattern.sub(lambda m: self.values[m.group()], text)

    def stream(self) -> StreamRestorer:
        return StreamRestorer(self)


class StreamRestorer:
    """Restores placeholders in text deltas; a placeholder may be split across deltas.

    Holds back at most `longest - 1` characters: a tail that could still become a
    placeholder. `finish()` flushes what is left.
    """

    def __init__(self, restore_map: RestoreMap) -> None:
        self._map = restore_map
        self._held = ""

    def feed(self, delta: str) -> str:
        if not self._map:
            return delta
        text = self._map.restore(self._held + delta)
        keep = self._partial_tail(text)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def finish(self) -> str:
        rest, self._held = self._held, ""
        return rest

    def _partial_tail(self, text: str) -> int:
        """Length of the longest suffix of `text` that is a proper prefix of a placeholder."""
        start = text.find("<", max(0, len(text) - self._map.longest + 1))
        while start != -1:
            tail = text[start:]
            if any(p.startswith(tail) and p != tail for p in self._map.values):
                return len(tail)
            start = text.find("<", start + 1)
        return 0
