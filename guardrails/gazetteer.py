"""Name lists shipped in guardrails/data (one name a line, '#' comments)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

__all__ = ["DATA_DIR", "load_names"]

DATA_DIR = Path(__file__).resolve().parent / "data"


@cache
def load_names(filename: str) -> frozenset[str]:
    lines = (DATA_DIR / filename).read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))
