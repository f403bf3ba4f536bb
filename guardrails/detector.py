"""The detector seam: text in, spans out. Both tiers (patterns, NER) implement it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from guardrails.spans import Span

__all__ = ["Detector"]


@runtime_checkable
class Detector(Protocol):
    """Finds entities in text; results are offsets into the text exactly as given."""

    def detect(self, text: str) -> list[Span]: ...

    def detect_batch(self, texts: Sequence[str]) -> list[list[Span]]: ...
