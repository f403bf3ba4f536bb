"""The on-disk spool of one audit outbox: ``current`` plus numbered segments.

Layout under the spool root: one directory per process (``<root>/<instance>/``) holding
an exclusively ``flock``-ed ``lock`` file, ``current`` (appended to, one JSON line per
record) and ``segment-000000000001``... (rotated from ``current`` before shipping, deleted
only after every row in them committed). A directory whose lock nobody holds belongs to a
process that died: `claim_orphans` lets a live outbox take it over and ship it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from io import BufferedWriter
from pathlib import Path
from typing import IO

__all__ = ["SpoolDir", "claim_orphans", "open_spool"]

log = logging.getLogger("raygate.audit")

LOCK = "lock"
CURRENT = "current"
SEGMENT = "segment-"


def _try_lock(path: Path, create: bool) -> IO[bytes] | None:
    try:
        handle = open(path, "a+b") if create else open(path, "r+b")  # noqa: SIM115
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


class SpoolDir:
    def __init__(self, path: Path, lock: IO[bytes]) -> None:
        self.path = path
        self._lock = lock  # closing it (or garbage-collecting it) releases the flock
        self._current: BufferedWriter = open(path / CURRENT, "ab")  # noqa: SIM115
        self._torn = False
        self.bytes = sum(p.stat().st_size for p in self._data_files())

    def _data_files(self) -> Iterator[Path]:
        yield from (p for p in self.path.iterdir() if p.name != LOCK and p.is_file())

    def append(self, line: bytes) -> None:
        """Write one newline-terminated record and flush it to the OS (no fsync)."""
        if self._torn:  # an earlier write failed half-way: end that line first
            self._current.write(b"\n")
            self._current.flush()
            self._torn = False
        try:
            self._current.write(line)
            self._current.flush()
        except OSError:
            self._torn = True
            raise
        self.bytes += len(line)

    @property
    def current_bytes(self) -> int:
        return self._current.tell()

    def rotate(self) -> None:
        """Close ``current`` as the next segment and start an empty one."""
        if self._current.tell() == 0:
            return
        self._current.close()
        os.rename(self.path / CURRENT, self.path / f"{SEGMENT}{self._next_number():012d}")
        self._current = open(self.path / CURRENT, "ab")  # noqa: SIM115

    def _next_number(self) -> int:
        numbers = [int(p.name[len(SEGMENT) :]) for p in self.segments()]
        return max(numbers, default=0) + 1

    def segments(self) -> list[Path]:
        found = [
            p
            for p in self.path.iterdir()
            if p.name.startswith(SEGMENT) and p.name[len(SEGMENT) :].isdigit()
        ]
        return sorted(found, key=lambda p: int(p.name[len(SEGMENT) :]))

    def empty(self) -> bool:
        return self._current.tell() == 0 and not self.segments()

    @staticmethod
    def read(segment: Path) -> list[bytes]:
        return [line for line in segment.read_bytes().split(b"\n") if line.strip()]

    def remove(self, segment: Path) -> None:
        size = segment.stat().st_size
        segment.unlink()
        self.bytes = max(0, self.bytes - size)

    def close(self) -> None:
        self._current.close()
        self._lock.close()

    def discard(self) -> None:
        """Remove an emptied directory (an adopted orphan), then release its lock."""
        try:
            if self.empty():
                self._current.close()
                shutil.rmtree(self.path, ignore_errors=True)
        finally:
            self.close()


def open_spool(root: Path, instance: str) -> SpoolDir:
    """This process's spool directory, locked; a fresh name if another process holds it."""
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    final = root / instance
    if final.is_dir():
        lock = _try_lock(final / LOCK, create=True)
        if lock is not None:
            return SpoolDir(final, lock)
        final = root / f"{instance}-{secrets.token_hex(4)}"
        log.warning("audit spool %s is in use; spooling in %s", root / instance, final)
    # Build the directory under a hidden name with its lock held, then move it into
    # place, so no other process ever sees it unlocked (and takes it for an orphan).
    staging = Path(tempfile.mkdtemp(prefix=".new-", dir=root))
    lock = _try_lock(staging / LOCK, create=True)
    assert lock is not None
    os.rename(staging, final)
    return SpoolDir(final, lock)


def claim_orphans(root: Path, own: Path) -> list[SpoolDir]:
    """Directories under `root` whose process died (nobody holds their lock), now ours."""
    claimed: list[SpoolDir] = []
    if not root.is_dir():
        return claimed
    for path in sorted(root.iterdir()):
        if path == own or path.name.startswith(".") or not path.is_dir():
            continue
        lock = _try_lock(path / LOCK, create=False)
        if lock is not None:
            claimed.append(SpoolDir(path, lock))
    return claimed
