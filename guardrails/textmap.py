"""Width and dash normalisation that remembers where every character came from.

Recognizers match on the normalised text (NFKC: full-width digits and letters become ASCII;
every dash-like character becomes "-"); spans found there are mapped back to the original
offsets so redaction replaces exactly what the caller wrote.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

__all__ = ["NormalizedText", "normalize"]

# Dash look-alikes people type in phone numbers and addresses (after NFKC).
_DASHES = frozenset("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2043\ufe63\uff0d")
# The long-vowel mark and its half-width form are a dash only between digits.
_LONG_VOWEL = frozenset("\u30fc\uff70")


@dataclass(frozen=True, slots=True)
class NormalizedText:
    text: str
    # origin[i] is the index in the original text of normalised character i;
    # origin[len(text)] == len(original).
    origin: tuple[int, ...]

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a normalised [start, end) range to the original text."""
        first = self.origin[start]
        if end <= start:
            return first, first
        # The original character that produced the last one ends one further on.
        return first, self.origin[end - 1] + 1


def normalize(text: str) -> NormalizedText:
    if text.isascii():
        return NormalizedText(text, tuple(range(len(text) + 1)))
    out: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        mapped = unicodedata.normalize("NFKC", char) if not char.isascii() else char
        if (
            mapped in _DASHES
            or char in _DASHES
            or (char in _LONG_VOWEL and out and out[-1][-1:].isdigit())
        ):
            mapped = "-"
        for piece in mapped:
            out.append(piece)
            origin.append(index)
    origin.append(len(text))
    return NormalizedText("".join(out), tuple(origin))
