"""English person names without an NER model: context cues plus a name gazetteer.

No trustworthy English spaCy NER model is available offline, so names are found by
(1) a cue before a capitalised name ("my name is", "Dear", "Mr."/"Ms."/"Dr.", "Regards,"
and a signature line, "customer", "patient", ...), accepting any capitalised words there;
(2) a known given name followed by a capitalised word ("Alice Goldberg"); (3) a known given
name on its own, unless it is also a common word ("Will", "May", "Grant", "Rose").
Surnames alone are never reported ("White", "Price" are words too).
"""

from __future__ import annotations

from typing import Any

import regex  # no stubs; \p{..}, overlapped
from presidio_analyzer import LocalRecognizer, RecognizerResult

from guardrails.gazetteer import load_names
from guardrails.recognizer import LANGUAGE

__all__ = ["EnglishNameRecognizer"]

_WORD = r"\p{Lu}[\p{Ll}'\u2019\-]+(?:-\p{Lu}[\p{Ll}]+)?"
_NAME = _WORD + r"(?:[ \t]+(?:\p{Lu}\.[ \t]+)?" + _WORD + r"){0,2}"
_CUE = (
    r"(?i:my name is|name is|name:|i am|i'm|dear|hi|hello|attn:?|contact person|"
    r"customer|client|patient|employee|applicant|candidate|tenant|signed,?|"
    r"sincerely,?|regards,?|best,?|thanks,?|cheers,?|from:|to:|cc:|assigned to)"
)
_TITLE = r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Madam|Mme|Herr|Frau)\.?"
_WORD_NAMES = load_names("en_name_words.txt")
_NOT_NAMES = load_names("en_not_names.txt")
_CUE_NAME = regex.compile(r"(?<![\p{L}])" + _CUE + r"[ \t]*\n?[ \t]*(?P<name>" + _NAME + r")")
_TITLE_NAME = regex.compile(r"(?<![\p{L}])" + _TITLE + r"[ \t]+(?P<name>" + _NAME + r")")
_GIVEN_THEN_WORD = regex.compile(
    r"(?<![\p{L}])" + _WORD + r"(?:[ \t]+(?:\p{Lu}\.[ \t]+)?" + _WORD + r")?"
)


class EnglishNameRecognizer(LocalRecognizer):
    def __init__(self) -> None:
        super().__init__(
            supported_entities=["PERSON"], supported_language=LANGUAGE, name="en_name_recognizer"
        )
        self._name = "en_name_recognizer"
        self._first = load_names("names_en_first.txt")
        self._last = load_names("names_en_last.txt")

    def load(self) -> None:
        return None

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: Any = None
    ) -> list[RecognizerResult]:
        found: list[RecognizerResult] = []
        for pattern, score in ((_TITLE_NAME, 0.85), (_CUE_NAME, 0.6)):
            for match in pattern.finditer(text):
                span = self._trim(text, match.start("name"), match.end("name"))
                if span is not None:
                    found.append(self._result(span[0], span[1], score))
        for match in _GIVEN_THEN_WORD.finditer(text, overlapped=True):
            words = match.group().split()
            known = words[0] in self._first
            plain_word = words[0].lower() in _WORD_NAMES
            with_surname = len(words) > 1 and known and words[1] in self._last
            if not (known and not plain_word) and not with_surname:
                continue
            span = self._trim(text, match.start(), match.end())
            if span is not None:
                score = 0.75 if len(words) > 1 else 0.5
                found.append(self._result(span[0], span[1], score))
        return found

    @staticmethod
    def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
        """Drop leading/trailing words that are not names; None when nothing is left."""
        words = [
            (m.start() + start, m.end() + start) for m in regex.finditer(r"\S+", text[start:end])
        ]
        while words and text[words[0][0] : words[0][1]].rstrip(".,") in _NOT_NAMES:
            words.pop(0)
        while words and text[words[-1][0] : words[-1][1]].rstrip(".,") in _NOT_NAMES:
            words.pop()
        if not words:
            return None
        return words[0][0], words[-1][1]

    def _result(self, start: int, end: int, score: float) -> RecognizerResult:
        return RecognizerResult(
            "PERSON",
            start,
            end,
            score,
            recognition_metadata={
                RecognizerResult.RECOGNIZER_NAME_KEY: self._name,
                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
            },
        )
