"""Cache policies: what is cached, for how long, and how alike two prompts must be.

These models stand alone (they do not import `serve.config`) so the platform config can
embed them as they are. Defaults are the conservative end: a wrong cache hit serves a
wrong answer, a missed one only costs a model call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "DEFAULT_SEMANTIC_THRESHOLD",
    "CachePolicy",
    "ExactCachePolicy",
    "SemanticCachePolicy",
]

# Chosen by `python -m serve.cache.eval` (serve/cache/data/paraphrases.jsonl, the numpy
# all-MiniLM-L6-v2, the default guards): the strictest threshold at which no near-miss
# hits and no paraphrase hit the guards allow is lost. With the guards off no threshold
# is safe: at 0.92 MiniLM alone serves 36% of English near-misses as hits.
DEFAULT_SEMANTIC_THRESHOLD = 0.92


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExactCachePolicy(_Frozen):
    """Byte-for-byte repeats of a request (after normalisation, see `serve.cache.keys`)."""

    enabled: bool = True
    # "team": a team only ever sees answers produced for itself. "global": identical
    # requests share answers across teams (only for models whose prompts hold no secrets).
    scope: Literal["team", "global"] = "team"
    ttl_s: float = Field(3600.0, gt=0)
    # Responses larger than this (encoded JSON bytes) are not stored.
    max_value_bytes: int = Field(262_144, ge=1024)
    # False: only requests that ask for a reproducible answer are cached (temperature 0,
    # or a seed). True: also sampled answers, so a repeat gets the first sample again.
    cache_any_temperature: bool = False


class SemanticCachePolicy(_Frozen):
    """Answers for a differently worded question with the same meaning (embeddings)."""

    enabled: bool = False
    embed_model: str | None = None
    # Chat models the semantic cache serves; "*" is every model.
    models: tuple[str, ...] = ("*",)
    threshold: float = Field(DEFAULT_SEMANTIC_THRESHOLD, gt=0, le=1)
    # Per chat model override of `threshold` (e.g. a stricter one for a finance model).
    thresholds: Mapping[str, float] = Field(default_factory=dict)
    ttl_s: float = Field(3600.0, gt=0)
    max_value_bytes: int = Field(65_536, ge=1024)
    # Entries kept per (team, model) log in the store and in each replica's index.
    max_entries: int = Field(10_000, ge=1, le=1_000_000)
    cache_any_temperature: bool = False
    # Longer questions are not embedded (their tails would be truncated by the embedder).
    max_prompt_chars: int = Field(1000, ge=1)
    # The embedder's token window: an input that used all of it may have been truncated,
    # so two prompts differing only after the cut would look identical; they are skipped.
    max_input_tokens: int = Field(256, ge=2)
    # all-MiniLM-L6-v2 is English-centric: on Japanese it cannot tell near-misses apart
    # (see serve.cache.eval), so prompts with more non-ASCII letters than this share are
    # not served from the semantic cache. 1.0 turns the guard off (a multilingual embedder).
    max_non_ascii_ratio: float = Field(0.2, ge=0, le=1)
    # Both questions must have the same content words in the same order; only filler,
    # case, punctuation and plural -s may differ (serve.cache.eligibility). Turn off only
    # for an embedder that serve.cache.eval shows separating one-word substitutions.
    match_content_words: bool = True
    # Numbers (amounts, days, years, ids) must be the same in both questions.
    match_numbers: bool = True
    # Both questions must agree on being negated ("not", "without", ...).
    match_negation: bool = True
    # How often a replica asks the store for entries other replicas added (0: every lookup).
    sync_interval_s: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _embedder_when_enabled(self) -> SemanticCachePolicy:
        if self.enabled and not self.embed_model:
            raise ValueError("semantic cache: embed_model is required when enabled")
        for model, value in self.thresholds.items():
            if not 0 < value <= 1:
                raise ValueError(f"semantic cache: threshold for {model!r} must be in (0, 1]")
        return self

    def serves(self, model: str) -> bool:
        return self.enabled and ("*" in self.models or model in self.models)

    def threshold_for(self, model: str) -> float:
        return self.thresholds.get(model, self.threshold)


class CachePolicy(_Frozen):
    exact: ExactCachePolicy = ExactCachePolicy()
    semantic: SemanticCachePolicy = SemanticCachePolicy()
