"""Fair share on shared self-hosted models: weighted fair queuing per team, across replicas."""

from serve.fairshare.factory import build_fair_share
from serve.fairshare.memory_queue import MemoryFairQueue
from serve.fairshare.policy import FairSharePolicy
from serve.fairshare.queue import FairQueue, QueueStats
from serve.fairshare.refusal import QUEUE_TIMEOUT
from serve.fairshare.share import FairShare, Held, SharedModel
from serve.fairshare.slot import Slot

__all__ = [
    "QUEUE_TIMEOUT",
    "FairQueue",
    "FairShare",
    "FairSharePolicy",
    "Held",
    "MemoryFairQueue",
    "QueueStats",
    "SharedModel",
    "Slot",
    "build_fair_share",
]
