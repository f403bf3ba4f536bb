"""A Presidio pattern recognizer with an optional validator (checksum, decoding, ...)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from presidio_analyzer import Pattern, PatternRecognizer

__all__ = ["LANGUAGE", "CheckedRecognizer"]

# One language code for every recognizer: prompts mix scripts (an English email address
# inside Japanese text), so all recognizers run over all text.
LANGUAGE = "xx"
# Case-sensitive unless a pattern says (?i); Presidio's default is IGNORECASE.
_FLAGS = re.DOTALL | re.MULTILINE  # the same values in `regex`, which Presidio uses


class CheckedRecognizer(PatternRecognizer):
    """Patterns for one entity type; `validator` rejects matches that fail a check.

    With `confirms` a passing check (a checksum) raises the score to 1.0; without it a
    passing check (a sanity check) keeps the pattern's score.
    """

    def __init__(
        self,
        entity_type: str,
        patterns: Sequence[tuple[str, str, float]],
        validator: Callable[[str], bool] | None = None,
        name: str | None = None,
        confirms: bool = False,
    ) -> None:
        super().__init__(
            supported_entity=entity_type,
            name=name or f"{entity_type.lower()}_recognizer",
            supported_language=LANGUAGE,
            patterns=[Pattern(pattern_name, rx, score) for pattern_name, rx, score in patterns],
            global_regex_flags=_FLAGS,
        )
        self._validator = validator
        self._confirms = confirms

    def validate_result(self, pattern_text: str) -> bool | None:
        if self._validator is None:
            return None
        if not self._validator(pattern_text):
            return False
        return True if self._confirms else None
