"""The admission seam: evaluate-and-record checks atomically, settle them afterwards."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from serve.admission.checks import Check, Verdict

__all__ = ["AdmissionStore"]


class AdmissionStore(Protocol):
    async def admit(self, rid: str, checks: Sequence[Check], lease_s: float) -> Verdict:
        """All checks pass and are recorded under ``rid``, or none is recorded.

        Uses older than a window, and leases older than ``lease_s``, are dropped first.
        """
        ...

    async def settle(
        self, rid: str, checks: Sequence[Check], actual: Sequence[int]
    ) -> tuple[int, ...]:
        """Replace each reservation with what was really used (``actual[i]``: tokens for a
        token window, nano-USD for a budget; ignored for request windows), release
        concurrency leases. Returns, per check, the budget's new spent total (0 for the
        others). Call once per admitted request."""
        ...
