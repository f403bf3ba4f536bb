"""The paraphrase set and the threshold recommendation behind the semantic cache default."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from models.engines.minilm_engine import MiniLMEngine
from serve.cache.eval import (
    Pair,
    PrecomputedMiniLM,
    load_pairs,
    main,
    rates,
    recommend,
    similarities,
)
from serve.cache.policy import DEFAULT_SEMANTIC_THRESHOLD, SemanticCachePolicy


def test_the_shipped_set_covers_what_it_claims() -> None:
    pairs = load_pairs()
    assert len(pairs) >= 150
    counts = Counter((p.lang, p.should_hit) for p in pairs)
    assert all(counts[(lang, hit)] >= 20 for lang in ("en", "ja") for hit in (True, False))
    near_kinds = {p.kind for p in pairs if not p.should_hit}
    assert {"different_entity", "different_number", "negation", "different_ask"} <= near_kinds
    assert all(p.should_hit == (p.kind == "paraphrase") for p in pairs)
    assert len({(p.cached, p.query) for p in pairs}) == len(pairs)  # no duplicates
    assert all(p.cached != p.query for p in pairs)


def pair(should_hit: bool) -> Pair:
    return Pair("en", "paraphrase" if should_hit else "different_entity", should_hit, "a", "b")


# (should_hit, similarity) per pair; None: a guard kept the pair apart
SYNTHETIC = [(True, 0.97), (True, 0.91), (True, None), (False, 0.93), (False, 0.85), (False, None)]


@pytest.mark.parametrize(
    ("bound", "thresholds", "expected"),
    [
        (0.0, (0.80, 0.90, 0.94, 0.96, 0.98), 0.96),  # strictest keeping the 0.97 hit
        (0.0, (0.80, 0.90), None),  # every threshold serves a near-miss
        (0.5, (0.80, 0.90, 0.92, 0.94), 0.90),  # one false hit in two allowed
    ],
)
def test_recommend(bound: float, thresholds: tuple[float, ...], expected: float | None) -> None:
    pairs = [pair(hit) for hit, _ in SYNTHETIC]
    sims = [s for _, s in SYNTHETIC]
    assert recommend(pairs, sims, "en", bound, thresholds) == expected


def test_rates_count_guarded_pairs_as_misses() -> None:
    pairs = [pair(hit) for hit, _ in SYNTHETIC]
    result = rates(pairs, [s for _, s in SYNTHETIC], 0.9, "en")
    assert (result.hit_rate, result.false_hit_rate) == (2 / 3, 1 / 3)
    assert (result.paraphrases, result.near_misses) == (3, 3)


async def test_default_threshold_is_what_the_evaluation_recommends() -> None:
    """Re-run `python -m serve.cache.eval` and update the default when this fails."""
    pairs = load_pairs()
    embedder = PrecomputedMiniLM()
    embedder.prepare([text for p in pairs for text in (p.cached, p.query)])
    default = SemanticCachePolicy(enabled=True, embed_model="all-minilm-l6-v2")
    sims = await similarities(pairs, embedder, default)
    assert rates(pairs, sims, DEFAULT_SEMANTIC_THRESHOLD, "en").false_hit_rate == 0.0
    assert rates(pairs, sims, DEFAULT_SEMANTIC_THRESHOLD, "ja").false_hit_rate == 0.0
    assert recommend(pairs, sims) == DEFAULT_SEMANTIC_THRESHOLD


async def test_precomputed_embeddings_are_what_the_engine_answers() -> None:
    texts = ["How do I reset my VPN password?", "What is the notice period for resignation?"]
    engine, batched = MiniLMEngine("all-minilm-l6-v2"), PrecomputedMiniLM()
    batched.prepare(texts)
    for text in texts:
        one = await engine.embeddings({"model": "m", "input": [text]})
        other = await batched.embeddings({"model": "m", "input": [text]})
        assert other["usage"] == one["usage"]
        assert other["data"][0]["embedding"] == pytest.approx(one["data"][0]["embedding"], abs=1e-5)


def test_command_line_prints_the_tables_and_a_recommendation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        ("en", "paraphrase", "How do I reset my VPN password?", "how do i reset my vpn password"),
        ("en", "negation", "Which invoices were paid?", "Which invoices were not paid?"),
        ("ja", "paraphrase", "会議室を予約する方法は?", "会議室を予約する方法を教えてください。"),
        ("ja", "different_ask", "会議室を予約する方法は?", "会議室の予約を取り消す方法は?"),
    ]
    data = tmp_path / "pairs.jsonl"
    data.write_text(
        "\n".join(
            json.dumps(
                {
                    "lang": lang,
                    "kind": kind,
                    "should_hit": kind == "paraphrase",
                    "cached": c,
                    "query": q,
                },
                ensure_ascii=False,
            )
            for lang, kind, c, q in rows
        ),
        encoding="utf-8",
    )
    assert main(["--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "4 pairs (2 English, 2 Japanese)" in out
    assert out.count("threshold   en hit") == 3  # raw, number/negation guards, default
    # the default policy serves the case-only variant and refuses the negation
    assert "recommended threshold: 0.98" in out and "paraphrase hit rate 100.0%" in out
    with pytest.raises(SystemExit):
        main(["--no-such-option"])
