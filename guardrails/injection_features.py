"""Hashed features for the injection classifier: word uni/bigrams and char 3-5-grams.

Char n-grams carry Japanese (no spaces) and misspellings; hashing keeps the model a fixed
size. Hashes are arithmetic (numpy, over code points) so they are the same in every
process; Python's `hash()` is salted and is not used.
"""

from __future__ import annotations

import itertools
import re
import zlib

import numpy as np
import numpy.typing as npt

__all__ = ["DIM", "featurize"]

DIM = 1 << 16
_MAX_CHARS = 6000
_WORD = re.compile(r"\w+")
_MULT = np.uint64(0x100000001B3)
_CHAR_NGRAMS = (3, 4, 5)


def featurize(cleaned: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Sorted distinct feature indices and their L2-normalised log counts."""
    if len(cleaned) > _MAX_CHARS:
        cleaned = cleaned[: _MAX_CHARS - 1000] + cleaned[-1000:]
    padded = " " + cleaned + " "
    codes = np.frombuffer(padded.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    parts: list[npt.NDArray[np.uint64]] = []
    with np.errstate(over="ignore"):
        for n in _CHAR_NGRAMS:
            if len(codes) < n:
                continue
            h = np.full(len(codes) - n + 1, np.uint64(n) * np.uint64(0x9E3779B97F4A7C15))
            for k in range(n):
                h = (h ^ codes[k : len(codes) - n + 1 + k]) * _MULT
            parts.append(h)
    words = _WORD.findall(cleaned)
    tokens = [f"w:{w}" for w in words] + [f"b:{a} {b}" for a, b in itertools.pairwise(words)]
    if tokens:
        parts.append(np.array([zlib.crc32(t.encode("utf-8")) for t in tokens], dtype=np.uint64))
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    hashed = np.concatenate(parts)
    index = ((hashed ^ (hashed >> np.uint64(31))) % np.uint64(DIM)).astype(np.int64)
    unique, counts = np.unique(index, return_counts=True)
    values = np.log1p(counts).astype(np.float32)
    values /= np.float32(np.linalg.norm(values))
    return unique, values
