"""Undoing the usual evasions before injection matching.

NFKC (full-width letters), zero-width and other invisible format characters removed,
Cyrillic/Greek look-alikes mapped to Latin, spaced-out letters ("i g n o r e") collapsed,
case folded. The result is for matching only, never shown or forwarded.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["clean_for_matching"]

# Cyrillic and Greek letters that render like Latin ones (lower case after casefold).
_LOOK_ALIKES = "авеёкмнорстухіїјѕԁɡһԛԝոսαβεηικνορτυχγωѵӏıℓ"
_LATIN = "abeekmhopctyxiijsdghqwnuabenikvoptuxywvlil"
_HOMOGLYPHS = str.maketrans(_LOOK_ALIKES, _LATIN)
_SPACED = re.compile(r"(?<![^\W\d_])(?:[^\W\d_][ .\-_*]){3,}[^\W\d_](?![^\W\d_])")
_SPACES = re.compile(r"[ \t]+")


def _invisible(char: str) -> bool:
    return unicodedata.category(char) == "Cf" or char in "\u034f\u115f\u1160\u3164\uffa0"


def clean_for_matching(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    if not text.isascii():
        text = "".join(c for c in text if not _invisible(c))
    text = text.casefold().translate(_HOMOGLYPHS)
    text = _SPACED.sub(lambda m: re.sub(r"[ .\-_*]", "", m.group()), text)
    return _SPACES.sub(" ", text)
