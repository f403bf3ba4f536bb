"""A replica-local nearest-neighbour index over unit vectors, in numpy.

Redis here has no vector search, and one (team, model) scope holds at most
``max_entries`` questions: a brute-force dot product over a contiguous float32 matrix
takes about 0.3 ms at 10 000 x 384 on this project's 2-core machines (a few ms while
they are busy), exact, with nothing to tune. Entries are appended in log order and the
oldest is overwritten once the index is full, so every replica that read the same log
evicts the same entries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Match", "VectorIndex"]

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Match:
    entry_id: str
    similarity: float


class VectorIndex:
    """Bounded; each entry has a group (only same-group entries match) and an expiry."""

    def __init__(self, dimensions: int, capacity: int) -> None:
        if dimensions < 1 or capacity < 1:
            raise ValueError("dimensions and capacity must be positive")
        self.dimensions = dimensions
        self.capacity = capacity
        self._vectors: F32 = np.zeros((min(capacity, 64), dimensions), dtype=np.float32)
        self._groups = np.zeros(len(self._vectors), dtype=np.uint64)
        self._expires = np.zeros(len(self._vectors), dtype=np.float64)
        self._ids: list[str] = []
        self._slots: dict[str, int] = {}
        self._oldest = 0  # once full: the slot the next entry overwrites

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._slots

    def add(self, entry_id: str, group: int, vector: F32, expires_at: float) -> None:
        """Add (or skip, if already present) an entry; the vector must be unit length."""
        if entry_id in self._slots:
            return
        if vector.shape != (self.dimensions,):
            raise ValueError(f"expected a {self.dimensions}-dimensional vector")
        if len(self._ids) < self.capacity:
            slot = len(self._ids)
            if slot == len(self._vectors):
                self._grow()
            self._ids.append(entry_id)
        else:
            slot = self._oldest
            del self._slots[self._ids[slot]]
            self._ids[slot] = entry_id
            self._oldest = (slot + 1) % self.capacity
        self._vectors[slot] = vector
        self._groups[slot] = group
        self._expires[slot] = expires_at
        self._slots[entry_id] = slot

    def _grow(self) -> None:
        size = min(self.capacity, 2 * len(self._vectors))
        vectors = np.zeros((size, self.dimensions), dtype=np.float32)
        vectors[: len(self._vectors)] = self._vectors
        self._vectors = vectors
        self._groups = np.resize(self._groups, size)
        self._expires = np.resize(self._expires, size)

    def discard(self, entry_id: str) -> None:
        """Make an entry unmatchable (its answer is gone); its slot ages out in order."""
        slot = self._slots.get(entry_id)
        if slot is not None:
            self._expires[slot] = -np.inf

    def best(self, vector: F32, group: int, now: float) -> Match | None:
        """The most similar live entry of ``group``, whatever its similarity."""
        n = len(self._ids)
        if n == 0:
            return None
        live = (self._groups[:n] == np.uint64(group)) & (self._expires[:n] > now)
        if not live.any():
            return None
        scores = self._vectors[:n] @ vector.astype(np.float32, copy=False)
        scores[~live] = -np.inf
        slot = int(np.argmax(scores))
        return Match(self._ids[slot], float(scores[slot]))
