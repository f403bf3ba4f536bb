"""Evidence for the guardrails: `python -m guardrails.eval [--data DIR] [--no-ner]`.

Prints precision/recall per entity type on presidio-research's synthetic English set and
on a generated Japanese set, injection TPR/FPR on the validation splits and the held-out
business corpus, and p50 latencies. A detection counts when it overlaps a gold span of
the same type (each gold span matched once).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from guardrails.corpus import corpus_lines
from guardrails.detector import Detector
from guardrails.eval_ja_dataset import generate
from guardrails.injection import InjectionDetector
from guardrails.ner_tier import GinzaDetector
from guardrails.pattern_tier import PatternDetector
from guardrails.shared_data import default_shared_dir, read_injection_csv, read_injection_parquet
from guardrails.spans import Span, resolve_overlaps

__all__ = ["PRESIDIO_TYPES", "main", "score_spans"]

# presidio-research entity type -> ours (None: not detected, reported as such).
PRESIDIO_TYPES: dict[str, str | None] = {
    "PERSON": "PERSON", "PHONE_NUMBER": "PHONE_NUMBER", "CREDIT_CARD": "CREDIT_CARD",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS", "IBAN_CODE": "IBAN_CODE", "US_SSN": "US_SSN",
    "IP_ADDRESS": "IP_ADDRESS", "STREET_ADDRESS": None, "GPE": None, "ORGANIZATION": None,
    "DATE_TIME": None, "TITLE": None, "AGE": None, "NRP": None, "ZIP_CODE": None,
    "DOMAIN_NAME": None, "US_DRIVER_LICENSE": None,
}  # fmt: skip

Gold = Sequence[tuple[str, int, int]]


def score_spans(
    examples: Iterable[tuple[Gold, Sequence[Span]]], types: Iterable[str]
) -> dict[str, tuple[int, int, int]]:
    """entity type -> (true positives, predicted, gold)."""
    wanted = set(types)
    tp: Counter[str] = Counter()
    pred: Counter[str] = Counter()
    gold: Counter[str] = Counter()
    for gold_spans, spans in examples:
        unmatched = [g for g in gold_spans if g[0] in wanted]
        gold.update(g[0] for g in unmatched)
        for span in spans:
            if span.entity_type not in wanted:
                continue
            pred[span.entity_type] += 1
            for g in unmatched:
                if g[0] == span.entity_type and span.start < g[2] and g[1] < span.end:
                    tp[span.entity_type] += 1
                    unmatched.remove(g)
                    break
    return {t: (tp[t], pred[t], gold[t]) for t in sorted(wanted)}


def _table(title: str, rows: dict[str, tuple[int, int, int]]) -> None:
    print(f"\n{title}\n{'entity':<18}{'precision':>10}{'recall':>8}{'pred':>7}{'gold':>7}")
    for entity, (tp, pred, gold) in rows.items():
        precision = f"{tp / pred:.3f}" if pred else "-"
        recall = f"{tp / gold:.3f}" if gold else "-"
        print(f"{entity:<18}{precision:>10}{recall:>8}{pred:>7}{gold:>7}")


def english_pii(data: Path, detector: Detector) -> None:
    records = json.loads((data / "pii/presidio_synth_dataset_v2.json").read_text("utf-8"))
    examples = []
    for record in records:
        gold = [
            (PRESIDIO_TYPES[s["entity_type"]] or "", s["start_position"], s["end_position"])
            for s in record["spans"]
        ]
        examples.append((gold, detector.detect(record["full_text"])))
    ours = sorted({t for t in PRESIDIO_TYPES.values() if t})
    _table(f"English PII: presidio-research synth_dataset_v2 ({len(records)} texts)",
           score_spans(examples, ours))  # fmt: skip
    missing = Counter(
        s["entity_type"]
        for r in records
        for s in r["spans"]
        if not PRESIDIO_TYPES[s["entity_type"]]
    )
    print(
        "not detected (no recognizer): " + ", ".join(f"{k} ({v})" for k, v in missing.most_common())
    )


def japanese_pii(detector: Detector, ner: Detector | None) -> None:
    examples = generate()
    types = ["PERSON", "PHONE_NUMBER", "JP_MY_NUMBER", "EMAIL_ADDRESS", "CREDIT_CARD",
             "JP_POSTAL_CODE", "JP_ADDRESS"]  # fmt: skip
    cheap = [(e.spans, detector.detect(e.text)) for e in examples]
    _table(
        f"Japanese PII (generated, {len(examples)} texts): cheap tier", score_spans(cheap, types)
    )
    if ner is not None:
        ner_spans = ner.detect_batch([e.text for e in examples])
        both = [
            (e.spans, resolve_overlaps([*spans, *extra]))
            for e, (_, spans), extra in zip(examples, cheap, ner_spans, strict=True)
        ]
        _table("Japanese PII: cheap tier + GiNZA NER tier", score_spans(both, types))
        only = [(e.spans, extra) for e, extra in zip(examples, ner_spans, strict=True)]
        _table("Japanese PII: GiNZA NER tier alone (PERSON)", score_spans(only, ["PERSON"]))


def injection(data: Path, detector: InjectionDetector) -> None:
    def flagged(text: str) -> bool:
        return bool(detector.signals(text)[1])

    print(
        f"\nPrompt injection (threshold {detector.classifier.threshold:.4f}; rules or classifier)"
    )
    print(f"{'set':<44}{'TPR':>7}{'FPR':>7}{'pos':>6}{'neg':>6}")
    sets: list[tuple[str, list[tuple[str, int]]]] = [
        ("s-labs validation", read_injection_csv(data / "injection/s-labs/validation.csv")),
        ("neuralchemy core-validation",
         read_injection_parquet(data / "injection/neuralchemy/core-validation.parquet")),
        ("benign business EN (held out)", _labelled("benign_en.txt", 0)),
        ("benign business JA (held out)", _labelled("benign_ja.txt", 0)),
        ("Japanese attacks (held out)", _labelled("attacks_ja.txt", 1)),
    ]  # fmt: skip
    for name, rows in sets:
        pos = [t for t, label in rows if label == 1]
        neg = [t for t, label in rows if label == 0]
        tpr = f"{sum(map(flagged, pos)) / len(pos):.3f}" if pos else "-"
        fpr = f"{sum(map(flagged, neg)) / len(neg):.3f}" if neg else "-"
        print(f"{name:<44}{tpr:>7}{fpr:>7}{len(pos):>6}{len(neg):>6}")


def _labelled(filename: str, label: int) -> list[tuple[str, int]]:
    return [(text, label) for text in corpus_lines(filename, "held_out")]


def _p50_ms(call: Callable[[], object], runs: int = 50) -> float:
    call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


EN_1K = (
    "Hi team, please review the attached Q3 budget for the Tokyo office. Contact Alice "
    "Goldberg at alice.goldberg@example.com or +1 415 555 2671 with questions. The vendor "
    "invoice INV-2291 is due on the 30th; card 4111 1111 1111 1111 was charged. "
) * 5
JA_1K = (
    "お世話になっております。経理部の田中太郎です。来週の会議資料を確認のうえ、"
    "〒100-0005 東京都千代田区丸の内1-2-3 の本社宛にご送付ください。"
    "ご不明点は090-1234-5678またはtanaka@example.co.jpまでお願いいたします。"
) * 6


def latency(detector: Detector, inj: InjectionDetector, ner: Detector | None) -> None:
    en, ja = EN_1K[:1024], JA_1K[:1024]
    print("\nLatency p50 (this machine)")
    print(f"cheap tier, 1 KB English:   {_p50_ms(lambda: detector.detect(en)):.2f} ms")
    print(f"cheap tier, 1 KB Japanese:  {_p50_ms(lambda: detector.detect(ja)):.2f} ms")
    print(f"injection, 1 KB English:    {_p50_ms(lambda: inj.signals(en)):.2f} ms")
    print(f"injection, 1 KB Japanese:   {_p50_ms(lambda: inj.signals(ja)):.2f} ms")
    if ner is not None:
        print(f"GiNZA NER, 1 KB Japanese:   {_p50_ms(lambda: ner.detect(ja), runs=5):.1f} ms")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Guardrails evaluation")
    parser.add_argument("--data", type=Path, default=default_shared_dir())
    parser.add_argument("--no-ner", action="store_true", help="skip the GiNZA tier")
    args = parser.parse_args(argv)
    if not (args.data / "pii").is_dir():
        print(f"development data not found at {args.data} (use --data DIR)", file=sys.stderr)
        return 2
    detector = PatternDetector()
    ner = None if args.no_ner else GinzaDetector()
    inj = InjectionDetector()
    english_pii(args.data, detector)
    japanese_pii(detector, ner)
    injection(args.data, inj)
    latency(detector, inj, ner)
    return 0


if __name__ == "__main__":
    sys.exit(main())
