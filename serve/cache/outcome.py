"""What a cache lookup tells the caller: the mode asked for, the status, the hit.

A lookup returns a `Lookup`; the caller answers from ``lookup.hit`` or calls the model
and hands the same `Lookup` back to ``store``. The lookup carries everything ``store``
needs (the key, the embedding), so nothing is computed twice and a response can only be
stored under the request it answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

__all__ = ["CacheHit", "CacheMode", "CacheStats", "CacheStatus", "Lookup"]


class CacheMode(StrEnum):
    """What the caller allows (the gateway maps the ``x-raygate-cache`` request header)."""

    USE = "use"  # read, and store the answer on a miss
    BYPASS = "bypass"  # don't read; store the fresh answer (refreshes the entry)
    NO_STORE = "no-store"  # neither read nor store: the request leaves no trace in the cache


class CacheStatus(StrEnum):
    """The value for the ``x-raygate-cache`` response header."""

    HIT = "hit"  # the exact same request was answered before
    SEMANTIC_HIT = "semantic-hit"  # a question with the same meaning was answered before
    MISS = "miss"  # looked, found nothing (also when the store failed: see CacheStats)
    BYPASS = "bypass"  # the caller asked not to read the cache
    UNCACHEABLE = "uncacheable"  # the request may not be answered from a cache


@dataclass(frozen=True, slots=True)
class CacheHit:
    """A cached answer, restamped: a fresh ``id`` and ``created``; ``usage`` as produced."""

    response: dict[str, Any]
    kind: Literal["exact", "semantic"]
    age_s: float
    source_id: str  # the id of the completion this answer was first served as
    similarity: float | None = None  # semantic hits: cosine similarity of the questions


@dataclass(frozen=True, slots=True)
class Lookup:
    status: CacheStatus
    hit: CacheHit | None = None
    # Semantic lookups: the best similarity seen, also below the threshold (diagnostics).
    similarity: float | None = None
    # What store() needs; None when this request must not be stored.
    ticket: Any = field(default=None, repr=False)


@dataclass
class CacheStats:
    """Counters per cache instance; the gateway exports them as metrics."""

    hits: int = 0
    misses: int = 0
    bypassed: int = 0
    uncacheable: int = 0
    stored: int = 0
    too_large: int = 0
    errors: int = 0  # store or embedder failures, each answered as a miss
