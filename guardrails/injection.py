"""Prompt-injection verdicts: heuristic rules plus the classifier, per text or request."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from guardrails.chat_request import iter_texts
from guardrails.injection_evidence import content_tokens
from guardrails.injection_model import InjectionClassifier
from guardrails.injection_rules import matching_rules
from guardrails.policy import InjectionPolicy
from guardrails.unicode_clean import clean_for_matching

__all__ = ["InjectionDetector", "InjectionVerdict"]

Action = Literal["block", "flag", "none"]


@dataclass(frozen=True)
class InjectionVerdict:
    score: float  # classifier score of the most suspicious text, 0..1
    signals: tuple[str, ...]  # rule names, plus "classifier" when it crossed the threshold
    action: Action  # "flag" under a block policy when only short texts tripped the classifier

    @property
    def detected(self) -> bool:
        return bool(self.signals)


class InjectionDetector:
    def __init__(self, classifier: InjectionClassifier | None = None) -> None:
        self.classifier = classifier or InjectionClassifier.load()

    def signals(self, text: str, threshold: float | None = None) -> tuple[float, list[str]]:
        score, fired, _ = self._signals(clean_for_matching(text), threshold)
        return score, fired

    def _signals(self, cleaned: str, threshold: float | None) -> tuple[float, list[str], int]:
        score = self.classifier.score_cleaned(cleaned)
        fired = matching_rules(cleaned)
        if score >= (threshold if threshold is not None else self.classifier.threshold):
            fired.append("classifier")
        return score, fired, content_tokens(cleaned)

    def check_texts(self, texts: Iterable[str], policy: InjectionPolicy) -> InjectionVerdict:
        """Rules or classifier detect; a classifier-only hit on a text shorter than the
        policy's `classifier_min_tokens` flags instead of blocking (too little evidence)."""
        if policy.action == "off":
            return InjectionVerdict(0.0, (), "none")
        # getattr: the field is added to InjectionPolicy by the owner of guardrails/policy.py.
        min_tokens = policy.classifier_min_tokens
        best = 0.0
        fired: dict[str, None] = {}
        conclusive = False
        for text in texts:
            score, names, tokens = self._signals(clean_for_matching(text), policy.threshold)
            best = max(best, score)
            kept = [n for n in names if policy.heuristics or n == "classifier"]
            fired.update(dict.fromkeys(kept))
            conclusive = conclusive or any(n != "classifier" or tokens >= min_tokens for n in kept)
        signals = tuple(fired)
        if not signals:
            return InjectionVerdict(best, (), "none")
        action: Action = policy.action if conclusive else "flag"
        return InjectionVerdict(best, signals, action)

    def check_request(
        self, request: Mapping[str, Any], policy: InjectionPolicy
    ) -> InjectionVerdict:
        """Scans what users and tools wrote (not the operator's system prompt)."""
        kinds = {"content", "prompt"} | ({"tool_result"} if policy.scan_tool_results else set())
        texts = [
            text
            for site, text in iter_texts(request)
            if site.kind in kinds and site.role not in {"system", "developer", "assistant"}
        ]
        return self.check_texts(texts, policy)
