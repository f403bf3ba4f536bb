"""Bounded metric label values: a time series per value, so every label has a known ceiling.

Team and model labels take only configured names; anything else (an unknown model a
caller asked for, a team from a JWT claim that no longer exists) becomes ``other``, and a
missing value becomes ``none``. Labels whose values come from raygate's own code (error
codes, guardrail actions) are checked for shape and capped at a number of distinct values.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

__all__ = ["NONE", "OTHER", "AllowedValues", "CappedValues", "status_class"]

OTHER = "other"
NONE = "none"
_SHAPE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class AllowedValues:
    """Only the names given (configured teams, models, aliases, routes)."""

    __slots__ = ("_allowed",)

    def __init__(self, names: Iterable[str]) -> None:
        self._allowed = frozenset(names)

    def __call__(self, value: str | None) -> str:
        if value is None:
            return NONE
        return value if value in self._allowed else OTHER


class CappedValues:
    """Values shaped like identifiers, the first ``limit`` distinct ones; then ``other``."""

    __slots__ = ("_limit", "_lock", "_seen")

    def __init__(self, limit: int, known: Iterable[str] = ()) -> None:
        self._limit = limit
        self._seen: set[str] = set(known)
        self._lock = threading.Lock()

    def __call__(self, value: str | None) -> str:
        if value is None:
            return NONE
        if value in self._seen:
            return value
        if not _SHAPE.match(value):
            return OTHER
        with self._lock:
            if len(self._seen) >= self._limit:
                return OTHER
            self._seen.add(value)
        return value


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else OTHER
