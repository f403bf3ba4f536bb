"""Shared state stores (limits, budgets, caches): Redis in production, memory locally."""

from __future__ import annotations

from typing import TYPE_CHECKING

from serve.settings import resolve_optional
from serve.state.protocol import StateStore

if TYPE_CHECKING:  # the config imports the cache policy, whose package imports this one
    from serve.config import StateConfig


def create_state_store(config: StateConfig) -> StateStore:
    if config.backend == "redis":
        from serve.state.redis_store import RedisStateStore

        url = resolve_optional(config.url)
        assert url is not None  # validated by StateConfig
        return RedisStateStore(url, prefix=config.key_prefix)
    from serve.state.memory_store import MemoryStateStore

    return MemoryStateStore(prefix=config.key_prefix)


__all__ = ["StateStore", "create_state_store"]
