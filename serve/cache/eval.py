"""Paraphrase evaluation of the semantic cache: ``python -m serve.cache.eval``.

Each pair of ``serve/cache/data/paraphrases.jsonl`` is a cached question and a new one:
a true paraphrase (should hit) or a near-miss on the same topic that needs another
answer (different entity, number, period, direction or ask, an added qualifier, or a
negation: must not hit). The questions go through the real `SemanticCache` (in-memory
store, one team per pair) with the real numpy all-MiniLM-L6-v2, under three policies:
no guards (the embedding alone), the number and negation guards, and the default policy
(all guards, see `serve.cache.eligibility`). For each threshold the table shows the
share of paraphrases served from the cache and the share of near-misses served from it
(false hits: a wrong answer to a business question), per language.

The recommended threshold is the strictest one that keeps English false hits within the
bound (default: none) without giving up a paraphrase hit: the largest safety margin that
costs nothing measured. Findings (numbers in the report the command prints): MiniLM
scores one-word substitutions and word-order swaps as high as true paraphrases, so no
threshold is safe on the embedding alone; with the content-word guard only surface
variants (case, punctuation, politeness, filler) hit, with no false hit. On Japanese it
separates nothing, hence the non-ASCII guard.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.engine import Engine, Request
from models.engines.minilm import MiniLMEmbedder
from models.engines.unsupported import NoGeneration
from serve.cache.outcome import CacheStatus
from serve.cache.policy import DEFAULT_SEMANTIC_THRESHOLD, SemanticCachePolicy
from serve.cache.semantic import SemanticCache
from serve.openai_types import EmbeddingList
from serve.state.memory_store import MemoryStateStore

__all__ = [
    "DATA",
    "THRESHOLDS",
    "Pair",
    "PrecomputedMiniLM",
    "Rates",
    "load_pairs",
    "main",
    "rates",
    "recommend",
    "similarities",
]

DATA = Path(__file__).parent / "data" / "paraphrases.jsonl"
THRESHOLDS = (0.70, 0.75, 0.80, 0.82, 0.84, 0.86, 0.88, 0.90, 0.92, 0.94, 0.96, 0.98)
_EMBED_MODEL = "all-minilm-l6-v2"
_CHAT_MODEL = "eval-chat"


@dataclass(frozen=True, slots=True)
class Pair:
    lang: str
    kind: str
    should_hit: bool
    cached: str
    query: str


def load_pairs(path: Path = DATA) -> list[Pair]:
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            pairs.append(
                Pair(row["lang"], row["kind"], bool(row["should_hit"]), row["cached"], row["query"])
            )
    return pairs


class PrecomputedMiniLM(NoGeneration):
    """all-MiniLM-L6-v2 behind the `Engine` seam, embedding a whole set up front.

    Batches of 32 run one forward pass where the cache's one-text requests would run one
    each; each text keeps its own vector and token count, so the cache sees exactly what
    `MiniLMEngine` would answer for it.
    """

    def __init__(self, embedder: MiniLMEmbedder | None = None) -> None:
        self._embedder = embedder or MiniLMEmbedder()
        self._known: dict[str, tuple[list[float], int]] = {}

    def prepare(self, texts: Sequence[str]) -> None:
        todo = sorted({t.strip() for t in texts} - self._known.keys())
        if todo:
            vectors, counts = self._embedder.embed(todo)
            for text, vector, count in zip(todo, vectors, counts, strict=True):
                self._known[text] = (vector.tolist(), count)

    async def embeddings(self, request: Request) -> EmbeddingList:
        (text,) = request["input"]
        text = str(text).strip()
        self.prepare([text])
        vector, count = self._known[text]
        return {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": vector}],
            "model": _EMBED_MODEL,
            "usage": {"prompt_tokens": count, "total_tokens": count},
        }

    async def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


def _chat(text: str) -> dict[str, Any]:
    return {
        "model": _CHAT_MODEL,
        "messages": [{"role": "user", "content": text}],
        "temperature": 0,
    }


_ANSWER: dict[str, Any] = {
    "id": "chatcmpl-eval",
    "object": "chat.completion",
    "created": 0,
    "model": _CHAT_MODEL,
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "cached answer"},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


async def similarities(
    pairs: Sequence[Pair], embedder: Engine, policy: SemanticCachePolicy
) -> list[float | None]:
    """Per pair: the similarity the cache saw for the new question against the cached one
    (None when the policy keeps them apart: a guard, or a question it does not serve)."""
    cache = SemanticCache(MemoryStateStore(), embedder, policy.model_copy(update={"threshold": 1}))
    out: list[float | None] = []
    for i, pair in enumerate(pairs):
        team = f"pair-{i}"
        first = await cache.lookup(team, _chat(pair.cached))
        await cache.store(first, _ANSWER)
        second = await cache.lookup(team, _chat(pair.query))
        seen = second.status is not CacheStatus.UNCACHEABLE
        out.append(second.similarity if seen else None)
    return out


@dataclass(frozen=True, slots=True)
class Rates:
    threshold: float
    hit_rate: float  # paraphrases served from the cache
    false_hit_rate: float  # near-misses served from the cache (a wrong answer)
    paraphrases: int
    near_misses: int


def rates(
    pairs: Sequence[Pair], sims: Sequence[float | None], threshold: float, lang: str
) -> Rates:
    def hits(should_hit: bool) -> tuple[int, int]:
        chosen = [
            s
            for p, s in zip(pairs, sims, strict=True)
            if p.lang == lang and p.should_hit == should_hit
        ]
        return sum(1 for s in chosen if s is not None and s >= threshold), len(chosen)

    good, n_good = hits(True)
    bad, n_bad = hits(False)
    return Rates(threshold, good / max(1, n_good), bad / max(1, n_bad), n_good, n_bad)


def recommend(
    pairs: Sequence[Pair],
    sims: Sequence[float | None],
    lang: str = "en",
    max_false_hit_rate: float = 0.0,
    thresholds: Sequence[float] = THRESHOLDS,
) -> float | None:
    """The strictest threshold that gives up no paraphrase hit among those whose false-hit
    rate stays within the bound: the largest safety margin that costs nothing measured."""
    safe = [
        rates(pairs, sims, t, lang)
        for t in thresholds
        if rates(pairs, sims, t, lang).false_hit_rate <= max_false_hit_rate
    ]
    if not safe:
        return None
    best = max(r.hit_rate for r in safe)
    return max(r.threshold for r in safe if r.hit_rate == best)


def _table(pairs: Sequence[Pair], sims: Sequence[float | None], title: str) -> list[str]:
    lines = [title, "  threshold   en hit  en false-hit   ja hit  ja false-hit"]
    for threshold in THRESHOLDS:
        en, ja = rates(pairs, sims, threshold, "en"), rates(pairs, sims, threshold, "ja")
        lines.append(
            f"  {threshold:9.2f}  {en.hit_rate:7.1%}  {en.false_hit_rate:12.1%}"
            f"  {ja.hit_rate:7.1%}  {ja.false_hit_rate:12.1%}"
        )
    return lines


def _by_kind(pairs: Sequence[Pair], sims: Sequence[float | None], threshold: float) -> list[str]:
    lines = [f"by kind at {threshold:.2f} (hits / pairs):"]
    groups = sorted({(p.lang, p.kind) for p in pairs})
    for lang, kind in groups:
        chosen = [s for p, s in zip(pairs, sims, strict=True) if (p.lang, p.kind) == (lang, kind)]
        hit = sum(1 for s in chosen if s is not None and s >= threshold)
        lines.append(f"  {lang} {kind:20s} {hit:3d} / {len(chosen):3d}")
    return lines


_CONFIGS: tuple[tuple[str, dict[str, Any]], ...] = (
    (
        "raw MiniLM cosine (no guards)",
        {
            "match_content_words": False,
            "match_numbers": False,
            "match_negation": False,
            "max_non_ascii_ratio": 1.0,
        },
    ),
    (
        "number and negation guards only",
        {"match_content_words": False, "max_non_ascii_ratio": 1.0},
    ),
    ("default policy (all guards)", {}),
)


async def _run(path: Path, max_false_hit_rate: float) -> int:
    pairs = load_pairs(path)
    embedder = PrecomputedMiniLM()
    embedder.prepare([text for p in pairs for text in (p.cached, p.query)])
    base = SemanticCachePolicy(enabled=True, embed_model=_EMBED_MODEL)
    results = []
    for title, changes in _CONFIGS:
        sims = await similarities(pairs, embedder, base.model_copy(update=changes))
        results.append((title, sims))
    count = {lang: sum(1 for p in pairs if p.lang == lang) for lang in ("en", "ja")}
    print(f"{len(pairs)} pairs ({count['en']} English, {count['ja']} Japanese) from {path}")
    for title, sims in results:
        print()
        print("\n".join(_table(pairs, sims, title + ":")))
    raw, guarded = results[0][1], results[-1][1]
    chosen = recommend(pairs, guarded, "en", max_false_hit_rate)
    print()
    if chosen is None:
        print("no threshold keeps English false hits within the bound")
        return 1
    for title, sims in results:
        print("\n".join(_by_kind(pairs, sims, chosen)).replace("by kind", title + ", by kind"))
        print()
    for title, sims in results[:-1]:
        alone = recommend(pairs, sims, "en", max_false_hit_rate)
        print(f"{title}: lowest-risk threshold {alone if alone is not None else 'none'}")
    ja_raw = recommend(pairs, raw, "ja", max_false_hit_rate)
    print(
        "Japanese, raw: "
        + (
            f"no false hit from {ja_raw:.2f}, where paraphrases hit "
            f"{rates(pairs, raw, ja_raw, 'ja').hit_rate:.1%}"
            if ja_raw is not None
            else "every threshold in the grid serves near-misses"
        )
    )
    en = rates(pairs, guarded, chosen, "en")
    print(
        f"recommended threshold: {chosen:.2f} (strictest with English false hits <= "
        f"{max_false_hit_rate:.0%} and no paraphrase hit given up): paraphrase hit rate "
        f"{en.hit_rate:.1%}, false-hit rate {en.false_hit_rate:.1%}"
    )
    print(f"configured default (serve.cache.policy): {DEFAULT_SEMANTIC_THRESHOLD:.2f}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve.cache.eval", description=__doc__)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--max-false-hit-rate", type=float, default=0.0)
    args = parser.parse_args(argv)
    return asyncio.run(_run(args.data, args.max_false_hit_rate))


if __name__ == "__main__":
    raise SystemExit(main())
