"""The NER detector tier: GiNZA (spaCy, ja_ginza) for Japanese person and place names.

Heavy (a few seconds to load, hundreds of MB, ~0.5 ms per character on a small CPU), so it
is its own object: loaded lazily and once, usable in-process or behind a separate
deployment (texts in, lists of picklable `Span`s out). Texts without any kana or kanji
are skipped without touching the model.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any

from guardrails.spans import Span

__all__ = ["GINZA_LABELS", "GinzaDetector", "has_japanese"]

# GiNZA's extended named-entity labels -> our entity types.
GINZA_LABELS = {
    "Person": "PERSON",
    "Province": "LOCATION",
    "City": "LOCATION",
    "County": "LOCATION",
}
_JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
# The parser and its dependants are not needed for entities.
_EXCLUDE = ["parser", "compound_splitter", "bunsetu_recognizer", "morphologizer"]


def has_japanese(text: str) -> bool:
    return _JAPANESE.search(text) is not None


class GinzaDetector:
    def __init__(self, model: str = "ja_ginza", score: float = 0.7) -> None:
        self._model = model
        self._score = score
        self._nlp: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        if self._nlp is None:
            with self._lock:
                if self._nlp is None:
                    import spacy  # heavy; only when the tier is really used

                    self._nlp = spacy.load(self._model, exclude=_EXCLUDE)

    def detect(self, text: str) -> list[Span]:
        return self.detect_batch([text])[0]

    def detect_batch(self, texts: Sequence[str]) -> list[list[Span]]:
        results: list[list[Span]] = [[] for _ in texts]
        todo = [i for i, text in enumerate(texts) if has_japanese(text)]
        if not todo:
            return results
        self.load()
        for index, doc in zip(todo, self._nlp.pipe([texts[i] for i in todo]), strict=True):
            results[index] = [
                Span(GINZA_LABELS[ent.label_], ent.start_char, ent.end_char, self._score, "ginza")
                for ent in doc.ents
                if ent.label_ in GINZA_LABELS
            ]
        return results
