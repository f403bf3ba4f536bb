"""Response caches: exact (same normalised request) and semantic (same meaning).

Both keep their entries in the state store, so every ingress replica shares them, and
neither ever fails a request. `ResponseCache` layers them for the gateway; see
`serve.cache.layered` for the call sequence and `python -m serve.cache.eval` for how the
semantic threshold was chosen.
"""

from serve.cache.exact import ExactCache
from serve.cache.keys import Endpoint, is_deterministic, normalise, request_key
from serve.cache.layered import ResponseCache
from serve.cache.outcome import CacheHit, CacheMode, CacheStats, CacheStatus, Lookup
from serve.cache.policy import (
    DEFAULT_SEMANTIC_THRESHOLD,
    CachePolicy,
    ExactCachePolicy,
    SemanticCachePolicy,
)
from serve.cache.replay import (
    assemble_chat,
    assemble_completion,
    replay_chat_stream,
    replay_completion_stream,
)
from serve.cache.semantic import SemanticCache

__all__ = [
    "DEFAULT_SEMANTIC_THRESHOLD",
    "CacheHit",
    "CacheMode",
    "CachePolicy",
    "CacheStats",
    "CacheStatus",
    "Endpoint",
    "ExactCache",
    "ExactCachePolicy",
    "Lookup",
    "ResponseCache",
    "SemanticCache",
    "SemanticCachePolicy",
    "assemble_chat",
    "assemble_completion",
    "is_deterministic",
    "normalise",
    "replay_chat_stream",
    "replay_completion_stream",
    "request_key",
]
