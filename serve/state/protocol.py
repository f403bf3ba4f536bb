"""The state-store seam shared by every ingress replica."""

from __future__ import annotations

from typing import Protocol


class StateStore(Protocol):
    """Small atomic primitives; callers namespace keys, the store adds its prefix."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None: ...

    async def set_if_absent(self, key: str, value: bytes, ttl_s: float | None = None) -> bool:
        """Set only when the key does not exist; True when this call set it."""
        ...

    async def delete(self, key: str) -> None: ...

    async def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int:
        """Add atomically and return the new value; the TTL is set when the key is created."""
        ...

    async def ping(self) -> bool: ...

    async def aclose(self) -> None: ...
