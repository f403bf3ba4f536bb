"""How much text the classifier had to go on: content tokens of a cleaned text.

Very short texts ("hi", "Say something.") carry too little evidence for the classifier
alone to block them: public injection sets are full of short "Say X" attacks, so a
short imperative looks like one. Below `DEFAULT_CLASSIFIER_MIN_TOKENS` tokens a classifier
hit only flags the request; a rule hit still blocks.
"""

from __future__ import annotations

import re

__all__ = ["DEFAULT_CLASSIFIER_MIN_TOKENS", "content_tokens"]

# A text with fewer content tokens needs a rule hit to be blocked (0: never applies).
DEFAULT_CLASSIFIER_MIN_TOKENS = 4

_WORD = re.compile(r"\w+")
# Kana, kanji (incl. extension A, compatibility), half-width katakana: no spaces between words.
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f]")


def content_tokens(cleaned: str) -> int:
    """Words; within a word, a run of Japanese characters counts one token per two."""
    total = 0
    for word in _WORD.findall(cleaned):
        cjk = len(_CJK.findall(word))
        total += (cjk + 1) // 2 + (1 if cjk < len(word) else 0)
    return total
