"""Japanese person names in the cheap tier: a surname list plus honorifics and cues.

"田中様", "佐藤花子さん", "担当の鈴木です": a known surname, an optional given name (known,
or 1-3 characters right before an honorific). GiNZA (the NER tier) finds the rest.
"""

from __future__ import annotations

from typing import Any

import regex  # no stubs; \p{..}, overlapped
from presidio_analyzer import LocalRecognizer, RecognizerResult

from guardrails.gazetteer import load_names
from guardrails.recognizer import LANGUAGE

__all__ = ["JapaneseNameRecognizer"]

_HONORIFIC = (
    r"(?:様|さま|さん|氏|殿|先生|部長|課長|係長|主任|社長|専務|常務|取締役|会長|教授|君|くん|ちゃん|"
    r"と申します|といいます|宛)"
)
# "です" alone follows any noun (関東です); it marks a name only after a self-introduction
# cue: 担当の鈴木です, 私は佐藤です.
_CUE_BEFORE = r"(?<=(?:担当|担当者|私|わたし|わたくし|弊社|当社)(?:の|は|、)?[ 　]?)"
_CHAR = r"[\p{Han}\p{Hiragana}\p{Katakana}ー々]"
# Kanji or katakana right before would make the surname part of a longer word (関東です);
# hiragana is a particle (担当の田中です) and fine.
_NO_WORD_BEFORE = r"(?<![\p{Han}\p{Katakana}ー々])"
# Words that follow a surname-looking word but make it a company or a place.
_NOT_GIVEN = ("商事", "商店", "工業", "銀行", "病院", "建設", "物産", "電機", "製作所")  # fmt: skip


class JapaneseNameRecognizer(LocalRecognizer):
    def __init__(self) -> None:
        super().__init__(
            supported_entities=["PERSON"], supported_language=LANGUAGE, name="ja_name_recognizer"
        )
        self._name = "ja_name_recognizer"
        surnames = sorted(load_names("names_ja_last.txt"), key=len, reverse=True)
        given = sorted(load_names("names_ja_first.txt"), key=len, reverse=True)
        surname = "(?:" + "|".join(map(regex.escape, surnames)) + ")"
        given_name = "(?:" + "|".join(map(regex.escape, given)) + ")"
        self._full = regex.compile(
            _NO_WORD_BEFORE + surname + r"[ 　]?" + given_name + r"(?!" + _CHAR + r"{2})"
        )
        given_guess = r"(?P<given>[ 　]?" + _CHAR + r"{1,3}?)??"
        self._honorific = regex.compile(
            _NO_WORD_BEFORE + surname + given_guess + r"(?=[ 　]?" + _HONORIFIC + ")"
        )
        self._introduced = regex.compile(_CUE_BEFORE + surname + given_guess + r"(?=です)")

    def load(self) -> None:
        return None

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: Any = None
    ) -> list[RecognizerResult]:
        found = [self._result(m.start(), m.end(), 0.8) for m in self._full.finditer(text)]
        matches = [*self._honorific.finditer(text), *self._introduced.finditer(text)]
        for match in matches:
            given = match.group("given") or ""
            if any(given.endswith(word) for word in _NOT_GIVEN):
                continue
            found.append(self._result(match.start(), match.end(), 0.7))
        return found

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
