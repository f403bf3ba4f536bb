"""Prompt-injection verdicts: heuristic rules plus the classifier, per text or request."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from guardrails.chat_request import iter_texts
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
    action: Action

    @property
    def detected(self) -> bool:
        return bool(self.signals)


class InjectionDetector:
    def __init__(self, classifier: InjectionClassifier | None = None) -> None:
        self.classifier = classifier or InjectionClassifier.load()

    def signals(self, text: str, threshold: float | None = None) -> tuple[float, list[str]]:
        cleaned = clean_for_matching(text)
        score = self.classifier.score_cleaned(cleaned)
        fired = matching_rules(cleaned)
        if score >= (threshold if threshold is not None else self.classifier.threshold):
            fired.append("classifier")
        return score, fired

    def check_texts(self, texts: Iterable[str], policy: InjectionPolicy) -> InjectionVerdict:
        if policy.action == "off":
            return InjectionVerdict(0.0, (), "none")
        best = 0.0
        fired: dict[str, None] = {}
        for text in texts:
            score, names = self.signals(text, policy.threshold)
            best = max(best, score)
            for name in names:
                if policy.heuristics or name == "classifier":
                    fired[name] = None
        signals = tuple(fired)
        return InjectionVerdict(best, signals, policy.action if signals else "none")

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
