"""Picks the fair queue that matches the shared state: Redis across replicas, else memory."""

from __future__ import annotations

from collections.abc import Mapping

from serve.fairshare.memory_queue import MemoryFairQueue
from serve.fairshare.policy import FairSharePolicy
from serve.fairshare.queue import FairQueue
from serve.fairshare.share import FairShare, SharedModel
from serve.state import StateStore
from serve.state.redis_store import RedisStateStore

__all__ = ["build_fair_share"]


def build_fair_share(
    shared: Mapping[str, tuple[FairSharePolicy, int]], state: StateStore
) -> FairShare:
    """``shared``: model name -> (its policy, replicas x max_ongoing_requests)."""
    queue: FairQueue
    if isinstance(state, RedisStateStore):
        from serve.fairshare.redis_queue import RedisFairQueue

        queue = RedisFairQueue(state.client, prefix=state.prefix)
    else:
        queue = MemoryFairQueue()
    models = {
        name: SharedModel(policy, policy.capacity_for(auto))
        for name, (policy, auto) in shared.items()
    }
    return FairShare(queue, models)
