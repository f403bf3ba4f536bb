"""The project's own text corpora (guardrails/data) and their deterministic split.

benign_en.txt / benign_ja.txt: business requests that must pass; attacks_ja.txt: Japanese
attacks. A line is held out (never trained on; used to choose the threshold and to
report) when crc32(line) % 5 >= 3: about 40%, fixed by the text alone.
"""

from __future__ import annotations

import zlib
from typing import Literal

from guardrails.gazetteer import DATA_DIR

__all__ = ["corpus_lines", "is_held_out"]

Part = Literal["train", "held_out", "all"]


def is_held_out(line: str) -> bool:
    return zlib.crc32(line.encode("utf-8")) % 5 >= 3


def corpus_lines(filename: str, part: Part = "all") -> list[str]:
    lines = (DATA_DIR / filename).read_text(encoding="utf-8").splitlines()
    texts = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if part == "all":
        return texts
    return [t for t in texts if is_held_out(t) == (part == "held_out")]
