"""Shared state stores (limits, budgets, caches): Redis in production, memory locally."""

from serve.config import StateConfig
from serve.settings import resolve_optional
from serve.state.protocol import StateStore


def create_state_store(config: StateConfig) -> StateStore:
    if config.backend == "redis":
        from serve.state.redis_store import RedisStateStore

        url = resolve_optional(config.url)
        assert url is not None  # validated by StateConfig
        return RedisStateStore(url, prefix=config.key_prefix)
    from serve.state.memory_store import MemoryStateStore

    return MemoryStateStore(prefix=config.key_prefix)


__all__ = ["StateStore", "create_state_store"]
