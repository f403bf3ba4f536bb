"""The replica-local vector index: nearest live entry per group, bounded, oldest evicted."""

from __future__ import annotations

import numpy as np
import pytest

from serve.cache.vector_index import VectorIndex


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_best_is_the_most_similar_entry_of_the_group() -> None:
    index = VectorIndex(dimensions=3, capacity=10)
    index.add("x", 1, unit(1, 0, 0), expires_at=100)
    index.add("xy", 1, unit(1, 1, 0), expires_at=100)
    index.add("other-group", 2, unit(0, 1, 0), expires_at=100)
    match = index.best(unit(0.2, 1, 0), group=1, now=0)
    assert match is not None and match.entry_id == "xy"
    assert match.similarity == pytest.approx(float(unit(0.2, 1, 0) @ unit(1, 1, 0)), abs=1e-6)
    other = index.best(unit(1, 0, 0), group=2, now=0)
    assert other is not None and other.entry_id == "other-group"
    assert index.best(unit(1, 0, 0), group=3, now=0) is None


def test_expired_and_discarded_entries_never_match() -> None:
    index = VectorIndex(dimensions=2, capacity=10)
    index.add("old", 1, unit(1, 0), expires_at=10)
    index.add("gone", 1, unit(1, 0.1), expires_at=100)
    index.add("live", 1, unit(0, 1), expires_at=100)
    index.discard("gone")
    match = index.best(unit(1, 0), group=1, now=10)
    assert match is not None and match.entry_id == "live"
    assert index.best(unit(1, 0), group=1, now=100) is None


def test_full_index_overwrites_the_oldest_and_grows_past_its_first_block() -> None:
    capacity = 100  # above the initial allocation of 64 rows
    index = VectorIndex(dimensions=2, capacity=capacity)
    for i in range(capacity + 5):
        angle = i / (capacity + 5) * np.pi / 2
        index.add(f"e{i}", 1, unit(np.cos(angle), np.sin(angle)), expires_at=1e9)
    assert len(index) == capacity
    assert all(f"e{i}" not in index for i in range(5))
    assert all(f"e{i}" in index for i in range(5, capacity + 5))
    match = index.best(unit(1, 0), group=1, now=0)
    assert match is not None and match.entry_id == "e5"  # e0..e4 were nearer, and evicted


def test_adding_an_entry_twice_keeps_one() -> None:
    index = VectorIndex(dimensions=2, capacity=2)
    index.add("a", 1, unit(1, 0), expires_at=1e9)
    index.add("a", 1, unit(1, 0), expires_at=1e9)
    index.add("b", 1, unit(0, 1), expires_at=1e9)
    assert len(index) == 2 and "a" in index and "b" in index


def test_rejects_a_vector_of_another_size() -> None:
    index = VectorIndex(dimensions=3, capacity=2)
    with pytest.raises(ValueError, match="3-dimensional"):
        index.add("a", 1, unit(1, 0), expires_at=1e9)
