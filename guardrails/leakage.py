"""System-prompt leakage: how much of the system prompt a response reproduces.

Both texts are normalised (NFKC, case, no invisible characters, punctuation and spaces
removed, so it works the same for Japanese) and cut into overlapping 16-character
shingles. A response leaks when the system-prompt characters its shingles cover reach the
threshold share (and at least 48 characters: quoting a short common phrase is not a leak),
or when it reproduces one contiguous run of 200 characters or more.
"""

from __future__ import annotations

import re

from guardrails.unicode_clean import clean_for_matching

__all__ = ["LeakageMeter"]

SHINGLE = 16
MIN_COVERED = 48
LONG_RUN = 200
_DROP = re.compile(r"[\W_]+")


def _normalise(text: str) -> str:
    return _DROP.sub("", clean_for_matching(text))


class LeakageMeter:
    """Fed the response incrementally; `share()` and `leaked()` at any time."""

    def __init__(self, system_prompt: str, threshold: float) -> None:
        self._system = _normalise(system_prompt)
        self._threshold = threshold
        self._positions: dict[str, list[int]] = {}
        for start in range(len(self._system) - SHINGLE + 1):
            self._positions.setdefault(self._system[start : start + SHINGLE], []).append(start)
        self._covered = bytearray(len(self._system))
        self._tail = ""

    @property
    def active(self) -> bool:
        return bool(self._positions)

    def feed(self, text: str) -> None:
        if not self._positions:
            return
        chunk = self._tail + _normalise(text)
        for start in range(len(chunk) - SHINGLE + 1):
            for position in self._positions.get(chunk[start : start + SHINGLE], ()):
                self._covered[position : position + SHINGLE] = b"\x01" * SHINGLE
        self._tail = chunk[-(SHINGLE - 1) :] if len(chunk) >= SHINGLE - 1 else chunk

    def share(self) -> float:
        return sum(self._covered) / len(self._covered) if self._covered else 0.0

    def longest_run(self) -> int:
        best = run = 0
        for flag in self._covered:
            run = run + 1 if flag else 0
            best = max(best, run)
        return best

    def leaked(self) -> bool:
        if not self._positions:
            return False
        covered = sum(self._covered)
        if covered >= MIN_COVERED and covered / len(self._covered) >= self._threshold:
            return True
        return self.longest_run() >= LONG_RUN
