"""Exact response cache: the same normalised request gets the same stored answer.

Entries live in the state store (Redis in production, shared by every ingress replica;
memory on the embedded default), one key per request: ``cache:exact:<sha256>``, where
the hash covers the endpoint, the scope (the team, or nothing with scope "global") and
the normalised request (`serve.cache.keys`). The value is the completed response; a
streamed request is stored in that form and replayed as a stream (`serve.cache.replay`).

The cache never fails a request: a store error, an undecodable entry or an oversized
answer is logged, counted in ``stats`` and treated as a miss (or as not stored).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from serve.cache.keys import Endpoint, is_deterministic, request_key
from serve.cache.outcome import CacheHit, CacheMode, CacheStats, CacheStatus, Lookup
from serve.cache.policy import ExactCachePolicy
from serve.state.protocol import StateStore

__all__ = ["ExactCache", "restamp", "storable_response"]

log = logging.getLogger(__name__)

_VALUE_VERSION = 1
_OBJECTS: dict[Endpoint, str] = {"chat": "chat.completion", "completions": "text_completion"}
_ID_PREFIX: dict[Endpoint, str] = {"chat": "chatcmpl-", "completions": "cmpl-"}
# Answers worth replaying: complete ones. content_filter and unknown reasons are not stored.
_FINISHED = frozenset({"stop", "length", "tool_calls"})


@dataclass(frozen=True, slots=True)
class _Ticket:
    key: str
    endpoint: Endpoint


def storable_response(endpoint: Endpoint, response: Mapping[str, Any]) -> bool:
    """A complete response of the endpoint's type: every choice finished normally."""
    choices = response.get("choices")
    return (
        response.get("object") == _OBJECTS[endpoint]
        and isinstance(choices, list)
        and bool(choices)
        and all(isinstance(c, Mapping) and c.get("finish_reason") in _FINISHED for c in choices)
        and isinstance(response.get("usage"), Mapping)
    )


def restamp(endpoint: Endpoint, response: dict[str, Any], now: float) -> dict[str, Any]:
    """A served copy gets its own id and time: every answer the gateway gives is distinct
    in logs and audit; the original id travels in `CacheHit.source_id`."""
    return {**response, "id": _ID_PREFIX[endpoint] + uuid.uuid4().hex, "created": int(now)}


class ExactCache:
    def __init__(
        self,
        store: StateStore,
        policy: ExactCachePolicy,
        *,
        clock: Callable[[], float] = time.time,
        namespace: str = "cache:exact:",
    ) -> None:
        self.policy = policy
        self.stats = CacheStats()
        self._store = store
        self._clock = clock
        self._namespace = namespace

    def _key(self, scope: str, endpoint: Endpoint, request: Mapping[str, Any]) -> str:
        owner = scope if self.policy.scope == "team" else None
        return self._namespace + request_key(endpoint, request, owner)

    async def lookup(
        self,
        scope: str,
        request: Mapping[str, Any],
        *,
        endpoint: Endpoint = "chat",
        mode: CacheMode = CacheMode.USE,
    ) -> Lookup:
        """Look ``request`` up for team ``scope``; pass the result to `store` on a miss."""
        if not self.policy.enabled or not is_deterministic(
            request, self.policy.cache_any_temperature
        ):
            self.stats.uncacheable += 1
            return Lookup(CacheStatus.UNCACHEABLE)
        if mode == CacheMode.NO_STORE:
            self.stats.bypassed += 1
            return Lookup(CacheStatus.BYPASS)
        ticket = _Ticket(self._key(scope, endpoint, request), endpoint)
        if mode == CacheMode.BYPASS:
            self.stats.bypassed += 1
            return Lookup(CacheStatus.BYPASS, ticket=ticket)
        hit = await self._read(ticket)
        if hit is None:
            self.stats.misses += 1
            return Lookup(CacheStatus.MISS, ticket=ticket)
        self.stats.hits += 1
        return Lookup(CacheStatus.HIT, hit=hit)

    async def _read(self, ticket: _Ticket) -> CacheHit | None:
        try:
            raw = await self._store.get(ticket.key)
        except Exception:
            log.warning("exact cache: read failed; answering as a miss", exc_info=True)
            self.stats.errors += 1
            return None
        if raw is None:
            return None
        try:
            entry = orjson.loads(raw)
            if entry.get("v") != _VALUE_VERSION or not storable_response(
                ticket.endpoint, entry["response"]
            ):
                raise ValueError("unexpected entry")
            response: dict[str, Any] = entry["response"]
            stored_at = float(entry["at"])
        except (orjson.JSONDecodeError, ValueError, KeyError, TypeError, AttributeError):
            log.warning("exact cache: undecodable entry; answering as a miss")
            self.stats.errors += 1
            return None
        now = self._clock()
        return CacheHit(
            response=restamp(ticket.endpoint, response, now),
            kind="exact",
            age_s=max(0.0, now - stored_at),
            source_id=str(response.get("id", "")),
        )

    async def store(self, lookup: Lookup, response: Mapping[str, Any]) -> bool:
        """Store the answer to the request ``lookup`` was made for; True when stored."""
        ticket = lookup.ticket
        if not isinstance(ticket, _Ticket) or not storable_response(ticket.endpoint, response):
            return False
        value = orjson.dumps({"v": _VALUE_VERSION, "at": self._clock(), "response": response})
        if len(value) > self.policy.max_value_bytes:
            self.stats.too_large += 1
            return False
        try:
            await self._store.set(ticket.key, value, ttl_s=self.policy.ttl_s)
        except Exception:
            log.warning("exact cache: write failed; answer not cached", exc_info=True)
            self.stats.errors += 1
            return False
        self.stats.stored += 1
        return True
