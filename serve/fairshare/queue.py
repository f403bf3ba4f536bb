"""The fair queue seam: a shared model's capacity, granted per team by weighted fair queuing.

Every implementation follows the same rules (`docs/fairshare.md`):

- **At once when free.** With a free slot and nobody waiting, `acquire` returns at once.
- **Start-time fair queuing** (SFQ, Goyal et al. 1996), weighted. Each team waits in its
  own FIFO. A team's first waiter carries the start tag ``max(team's last finish tag,
  model's virtual time)``; a freed slot goes to the team with the smallest start tag, that
  team's finish tag becomes ``start + 1 / weight`` and the virtual time moves up to the
  start tag. Backlogged teams are therefore served in proportion to their weights. A team
  with nobody waiting carries no tag, so its share goes to the teams that wait
  (work-conserving), and it banks no credit while idle: it comes back at the virtual time,
  which also puts a light team's request ahead of a flooding team's queue (low delay).
- **Hand-off.** A released slot goes straight to the next waiter; no one can barge in.
- **Bounded wait.** A waiter still queued after ``max_wait_s`` leaves the queue and gets
  `serve.errors.RateLimited` (429, code ``fair_share_queue_timeout``, ``retry-after``).
- **Cancellation.** A waiter cancelled while queued leaves the queue; one cancelled just
  after it was granted hands the slot on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from serve.fairshare.slot import Slot

__all__ = ["FairQueue", "QueueStats"]


@dataclass(frozen=True, slots=True)
class QueueStats:
    in_flight: int
    waiting: int


class FairQueue(Protocol):
    async def acquire(
        self,
        model: str,
        team: str,
        weight: float,
        capacity: int,
        max_wait_s: float,
        *,
        lease_s: float = 30.0,
        on_queued: Callable[[], None] | None = None,
    ) -> Slot:
        """A slot on ``model`` (at most ``capacity`` held at once), waiting at most
        ``max_wait_s``. ``on_queued`` is called once if the request has to wait. ``lease_s``:
        how long a slot survives a holder that stopped renewing it (crashed replica)."""
        ...

    async def release(self, slot: Slot) -> None:
        """Free the slot (hand it to the next waiter). Idempotent."""
        ...

    async def stats(self, model: str) -> QueueStats:
        """Slots held and requests waiting on ``model`` now."""
        ...

    async def aclose(self) -> None:
        """Stop background work; slots still held are released."""
        ...
