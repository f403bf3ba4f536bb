"""Train the injection classifier and write guardrails/data/injection_model.npz.

    python -m guardrails.injection_train [--data DIR]

Deterministic (no random state: full-batch Adam from zero weights). Training data: the
s-labs and neuralchemy train splits, plus the training part of the project's benign
business corpus (EN/JA, weighted up: public sets call only short questions benign, so the
corpus carries several hundred short prompts) and of its Japanese attacks. The threshold
is the lowest at which the whole detector (rules or classifier) flags at most 1% of the
held-out business corpus.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from guardrails.corpus import corpus_lines
from guardrails.injection_features import DIM, featurize
from guardrails.injection_model import MODEL_PATH
from guardrails.injection_rules import matching_rules
from guardrails.shared_data import default_shared_dir, read_injection_csv, read_injection_parquet
from guardrails.unicode_clean import clean_for_matching

__all__ = ["choose_threshold", "main", "training_set"]

MAX_FPR = 0.01
BENIGN_CORPUS_WEIGHT = 8.0
L2 = 1e-5
STEPS = 300
LEARNING_RATE = 0.05


def training_set(data_dir: Path) -> tuple[list[str], list[int], list[float]]:
    texts: list[str] = []
    labels: list[int] = []
    weights: list[float] = []

    def add(rows: Sequence[tuple[str, int]], weight: float) -> None:
        for text, label in rows:
            texts.append(text)
            labels.append(int(label))
            weights.append(weight)

    add(read_injection_csv(data_dir / "injection/s-labs/train.csv"), 1.0)
    add(read_injection_parquet(data_dir / "injection/neuralchemy/core-train.parquet"), 1.0)
    for name in ("benign_en.txt", "benign_ja.txt"):
        add([(t, 0) for t in corpus_lines(name, "train")], BENIGN_CORPUS_WEIGHT)
    add([(t, 1) for t in corpus_lines("attacks_ja.txt", "train")], BENIGN_CORPUS_WEIGHT)
    return texts, labels, weights


def _matrix(texts: Sequence[str]) -> tuple[npt.NDArray[np.int64], ...]:
    rows, cols, vals = [], [], []
    for row, text in enumerate(texts):
        index, values = featurize(clean_for_matching(text))
        rows.append(np.full(len(index), row, dtype=np.int64))
        cols.append(index)
        vals.append(values)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)


def fit(
    texts: Sequence[str], labels: Sequence[int], sample_weights: Sequence[float]
) -> tuple[npt.NDArray[np.float32], float]:
    rows, cols, vals = _matrix(texts)
    y = np.asarray(labels, dtype=np.float64)
    sw = np.asarray(sample_weights, dtype=np.float64)
    # Balance the classes (by total weight), then normalise to a mean of 1.
    for label in (0, 1):
        mask = y == label
        sw[mask] *= 0.5 * sw.sum() / sw[mask].sum()
    sw /= sw.mean()
    n = len(y)
    w = np.zeros(DIM)
    b = 0.0
    m_w, v_w = np.zeros(DIM), np.zeros(DIM)
    m_b = v_b = 0.0
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, STEPS + 1):
        z = np.bincount(rows, weights=w[cols] * vals, minlength=n) + b
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
        r = sw * (p - y) / n
        g_w = np.bincount(cols, weights=r[rows] * vals, minlength=DIM) + L2 * w
        g_b = float(r.sum())
        m_w = beta1 * m_w + (1 - beta1) * g_w
        v_w = beta2 * v_w + (1 - beta2) * g_w * g_w
        m_b = beta1 * m_b + (1 - beta1) * g_b
        v_b = beta2 * v_b + (1 - beta2) * g_b * g_b
        correction = math.sqrt(1 - beta2**step) / (1 - beta1**step)
        w -= LEARNING_RATE * correction * m_w / (np.sqrt(v_w) + eps)
        b -= LEARNING_RATE * correction * m_b / (math.sqrt(v_b) + eps)
    return w.astype(np.float32), b


def choose_threshold(benign_scores: Sequence[float], benign_rule_hits: Sequence[bool]) -> float:
    """Lowest threshold keeping (rule hit or score >= threshold) at <= MAX_FPR."""
    allowed = math.floor(MAX_FPR * len(benign_scores)) - sum(benign_rule_hits)
    candidates = sorted(
        (s for s, hit in zip(benign_scores, benign_rule_hits, strict=True) if not hit),
        reverse=True,
    )
    if allowed < 0:
        raise SystemExit("the heuristic rules alone flag more than 1% of held-out business text")
    above = candidates[allowed] if allowed < len(candidates) else 0.0
    # Just above the highest score that must still pass (never below 0.5).
    return max(0.5, min(0.999, above + 1e-4))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_shared_dir())
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    args = parser.parse_args(argv)
    texts, labels, weights = training_set(args.data)
    w, b = fit(texts, labels, weights)
    held_out = corpus_lines("benign_en.txt", "held_out") + corpus_lines("benign_ja.txt", "held_out")
    cleaned = [clean_for_matching(t) for t in held_out]
    scores = [_score(w, b, c) for c in cleaned]
    hits = [bool(matching_rules(c)) for c in cleaned]
    threshold = choose_threshold(scores, hits)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out, weights=w.astype(np.float16), bias=np.float64(b), threshold=np.float64(threshold)
    )
    print(f"trained on {len(texts)} texts; threshold {threshold:.4f}; wrote {args.out}")
    return 0


def _score(w: npt.NDArray[np.float32], b: float, cleaned: str) -> float:
    index, values = featurize(cleaned)
    z = float(np.dot(w.astype(np.float16).astype(np.float32)[index], values)) + b
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


if __name__ == "__main__":
    sys.exit(main())
