"""Semantic response cache: a question with the same meaning gets the stored answer.

Layout in the state store, per scope = (team, chat model, embedding model):

- ``cache:semantic:<scope>:log`` - a bounded append-only log (`StateStore.log_append`) of
  entries ``{id, ctx, exp, vec}``: the question's unit embedding (float32), the hash of
  what must match exactly (`serve.cache.eligibility`) and the expiry. The newest
  ``max_entries`` are kept; the log's TTL is refreshed on every append.
- ``cache:semantic:r:<id>`` - the answer, with the entry's TTL.

Every ingress replica keeps a local `VectorIndex` per scope and reads only the log
entries after its last cursor before a lookup (at most every ``sync_interval_s``), so an
answer stored by one replica is found by all, and the similarity search runs in numpy
(Redis here has no vector search). A team's lookups only ever read its own scopes, and
the answer record repeats its scope and context, checked again on a hit.

Sizes: an entry takes about 2 KiB in the log (384 float32 in base64) and 1.5 KiB in a
replica's index; a replica's first lookup in a scope reads the whole log (about 85 ms per
2 000 entries on this project's machines), later ones only what is new.

As the exact cache, it never fails a request: embedder and store failures are logged,
counted and answered as a miss.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import orjson

from models.engine import Engine
from serve.cache.eligibility import SemanticQuery, semantic_query
from serve.cache.exact import restamp, storable_response
from serve.cache.keys import digest
from serve.cache.outcome import CacheHit, CacheMode, CacheStats, CacheStatus, Lookup
from serve.cache.policy import SemanticCachePolicy
from serve.cache.vector_index import F32, VectorIndex
from serve.state.protocol import StateStore

__all__ = ["SemanticCache"]

log = logging.getLogger(__name__)

_VERSION = 1
_PAGE = 1000


@dataclass(frozen=True, slots=True)
class _Ticket:
    scope: str
    query: SemanticQuery
    vector: F32 | None = field(default=None, compare=False)


@dataclass
class _Scope:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    index: VectorIndex | None = None
    cursor: str | None = None
    synced_at: float | None = None


def _group(context: str) -> int:
    return int(context[:16], 16)


class SemanticCache:
    def __init__(
        self,
        store: StateStore,
        embedder: Engine,
        policy: SemanticCachePolicy,
        *,
        clock: Callable[[], float] = time.time,
        namespace: str = "cache:semantic:",
    ) -> None:
        if not policy.embed_model:
            raise ValueError("semantic cache: the policy names no embed_model")
        self.policy = policy
        self.stats = CacheStats()
        self._store = store
        self._embedder = embedder
        self._embed_model = policy.embed_model
        self._clock = clock
        self._namespace = namespace
        self._scopes: dict[str, _Scope] = {}

    # -- keys -----------------------------------------------------------------------------

    def _scope(self, team: str, model: str) -> str:
        return digest({"team": team, "model": model, "embed": self._embed_model})[:32]

    def _log_key(self, scope: str) -> str:
        return f"{self._namespace}{scope}:log"

    def _answer_key(self, entry_id: str) -> str:
        return f"{self._namespace}r:{entry_id}"

    # -- lookup ---------------------------------------------------------------------------

    async def lookup(
        self, scope: str, request: Mapping[str, Any], *, mode: CacheMode = CacheMode.USE
    ) -> Lookup:
        """Look a chat request up for team ``scope``; pass the result to `store` on a miss."""
        query = semantic_query(request, self.policy)
        if query is None:
            self.stats.uncacheable += 1
            return Lookup(CacheStatus.UNCACHEABLE)
        if mode == CacheMode.NO_STORE:
            self.stats.bypassed += 1
            return Lookup(CacheStatus.BYPASS)
        ticket = _Ticket(self._scope(scope, str(request["model"])), query)
        if mode == CacheMode.BYPASS:
            self.stats.bypassed += 1
            return Lookup(CacheStatus.BYPASS, ticket=ticket)
        try:
            vector = await self._embed(query.text)
        except Exception:
            log.warning("semantic cache: embedding failed; answering as a miss", exc_info=True)
            self.stats.errors += 1
            self.stats.misses += 1
            return Lookup(CacheStatus.MISS, ticket=ticket)
        if vector is None:
            self.stats.uncacheable += 1
            return Lookup(CacheStatus.UNCACHEABLE)
        ticket = replace(ticket, vector=vector)
        state = await self._synced(ticket.scope)
        now = self._clock()
        match = state.index.best(vector, _group(query.context), now) if state.index else None
        similarity = match.similarity if match else None
        threshold = self.policy.threshold_for(str(request["model"]))
        if match is None or match.similarity < threshold:
            self.stats.misses += 1
            return Lookup(CacheStatus.MISS, similarity=similarity, ticket=ticket)
        hit = await self._answer(ticket, match.entry_id, match.similarity, now)
        if hit is None:
            if state.index is not None:
                state.index.discard(match.entry_id)
            self.stats.misses += 1
            return Lookup(CacheStatus.MISS, similarity=similarity, ticket=ticket)
        self.stats.hits += 1
        return Lookup(CacheStatus.SEMANTIC_HIT, hit=hit, similarity=similarity)

    async def _embed(self, text: str) -> F32 | None:
        """The unit embedding of ``text``; None when the embedder may have truncated it."""
        result = await self._embedder.embeddings(
            {"model": self._embed_model, "input": [text], "encoding_format": "float"}
        )
        if int(result["usage"]["prompt_tokens"]) >= self.policy.max_input_tokens:
            return None
        raw = result["data"][0]["embedding"]
        if isinstance(raw, str):
            vector = np.frombuffer(base64.b64decode(raw), dtype="<f4").astype(np.float32)
        else:
            vector = np.asarray(raw, dtype=np.float32)
        norm = float(np.linalg.norm(vector))
        if vector.ndim != 1 or not np.isfinite(norm) or norm == 0.0:
            raise ValueError("the embedder returned an unusable vector")
        unit: F32 = vector / np.float32(norm)
        return unit

    async def _answer(
        self, ticket: _Ticket, entry_id: str, similarity: float, now: float
    ) -> CacheHit | None:
        try:
            raw = await self._store.get(self._answer_key(entry_id))
        except Exception:
            log.warning("semantic cache: read failed; answering as a miss", exc_info=True)
            self.stats.errors += 1
            return None
        if raw is None:
            return None  # expired or evicted before its log entry
        try:
            record = orjson.loads(raw)
            if (
                record.get("v") != _VERSION
                or record.get("scope") != ticket.scope
                or record.get("ctx") != ticket.query.context
                or not storable_response("chat", record["response"])
            ):
                raise ValueError("entry does not belong to this question")
            response: dict[str, Any] = record["response"]
            stored_at = float(record["at"])
        except (orjson.JSONDecodeError, ValueError, KeyError, TypeError, AttributeError):
            log.warning("semantic cache: unusable answer record; answering as a miss")
            self.stats.errors += 1
            return None
        return CacheHit(
            response=restamp("chat", response, now),
            kind="semantic",
            age_s=max(0.0, now - stored_at),
            source_id=str(response.get("id", "")),
            similarity=similarity,
        )

    # -- replica sync ---------------------------------------------------------------------

    async def _synced(self, scope: str) -> _Scope:
        """The scope's local index, after reading what other replicas appended."""
        state = self._scopes.setdefault(scope, _Scope())
        interval = self.policy.sync_interval_s
        if state.synced_at is not None and self._clock() - state.synced_at < interval:
            return state
        async with state.lock:
            if state.synced_at is not None and self._clock() - state.synced_at < interval:
                return state
            started = self._clock()
            try:
                while True:
                    entries = await self._store.log_read(self._log_key(scope), state.cursor, _PAGE)
                    for entry in entries:
                        self._index(state, entry.value)
                        state.cursor = entry.cursor
                    if len(entries) < _PAGE:
                        break
                state.synced_at = started
            except Exception:
                # Serve from what this replica already has; the next lookup tries again.
                log.warning("semantic cache: sync failed; using the local index", exc_info=True)
                self.stats.errors += 1
        return state

    def _index(self, state: _Scope, value: bytes) -> None:
        try:
            entry = orjson.loads(value)
            vector = np.frombuffer(base64.b64decode(entry["vec"]), dtype="<f4").astype(np.float32)
            entry_id, context, expires = str(entry["id"]), str(entry["ctx"]), float(entry["exp"])
        except (orjson.JSONDecodeError, ValueError, KeyError, TypeError):
            log.warning("semantic cache: skipping an undecodable log entry")
            self.stats.errors += 1
            return
        if state.index is None:
            state.index = VectorIndex(len(vector), self.policy.max_entries)
        if len(vector) != state.index.dimensions:
            self.stats.errors += 1  # another embedder wrote here; its vectors don't compare
            return
        state.index.add(entry_id, _group(context), vector, expires)

    # -- store ----------------------------------------------------------------------------

    async def store(self, lookup: Lookup, response: Mapping[str, Any]) -> bool:
        """Store the answer to the question ``lookup`` was made for; True when stored."""
        ticket = lookup.ticket
        if not isinstance(ticket, _Ticket) or not storable_response("chat", response):
            return False
        if any(choice["message"].get("tool_calls") for choice in response["choices"]):
            return False
        now = self._clock()
        record = orjson.dumps(
            {
                "v": _VERSION,
                "scope": ticket.scope,
                "ctx": ticket.query.context,
                "at": now,
                "response": response,
            }
        )
        if len(record) > self.policy.max_value_bytes:
            self.stats.too_large += 1
            return False
        try:
            vector = (
                ticket.vector if ticket.vector is not None else await self._embed(ticket.query.text)
            )
            if vector is None:
                return False
            entry_id = uuid.uuid4().hex
            expires = now + self.policy.ttl_s
            await self._store.set(self._answer_key(entry_id), record, ttl_s=self.policy.ttl_s)
            entry = orjson.dumps(
                {
                    "id": entry_id,
                    "ctx": ticket.query.context,
                    "exp": expires,
                    "vec": base64.b64encode(vector.astype("<f4").tobytes()).decode(),
                }
            )
            await self._store.log_append(
                self._log_key(ticket.scope),
                entry,
                max_len=self.policy.max_entries,
                ttl_s=self.policy.ttl_s,
            )
        except Exception:
            log.warning("semantic cache: write failed; answer not cached", exc_info=True)
            self.stats.errors += 1
            return False
        # Visible here at once; other replicas read it from the log (this one skips it then).
        self._index(self._scopes.setdefault(ticket.scope, _Scope()), entry)
        self.stats.stored += 1
        return True
