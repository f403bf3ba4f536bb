"""Locating the development data in ../shared (beside the repository) and reading it."""

from __future__ import annotations

import csv
from pathlib import Path

__all__ = ["default_shared_dir", "read_injection_csv", "read_injection_parquet"]


def default_shared_dir() -> Path:
    """`shared/` beside the repository (the repo at /work/main -> /work/shared/data)."""
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def read_injection_csv(path: Path) -> list[tuple[str, int]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [(row["text"], int(row["label"])) for row in csv.DictReader(handle)]


def read_injection_parquet(path: Path) -> list[tuple[str, int]]:
    import pyarrow.parquet as pq  # type: ignore[import-untyped]  # dev dependency (eval, training)

    table = pq.read_table(path, columns=["text", "label"])
    return list(zip(table["text"].to_pylist(), table["label"].to_pylist(), strict=True))
