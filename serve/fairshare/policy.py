"""Fair share on a shared self-hosted model: validated, frozen, standalone.

The platform config embeds one `FairSharePolicy` per model whose config says
``sharing: shared``; no `serve.config` import here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = ["FairSharePolicy"]

TeamName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")]
Weight = Annotated[float, Field(gt=0, le=1000)]


class FairSharePolicy(BaseModel):
    """When a shared model is full, requests queue per team and are released by weighted
    fair queuing; a request that waits longer than ``max_wait_s`` gets a 429."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    # Requests in flight on the model at once, over every ingress replica. "auto": the
    # caller's replicas x max_ongoing_requests of the model's deployment.
    capacity: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    # Relative shares when teams compete; a team not listed weighs `default_weight`.
    weights: Mapping[TeamName, Weight] = Field(default_factory=dict)
    default_weight: Weight = 1.0
    max_wait_s: float = Field(30.0, gt=0, le=600)
    # Crash safety (Redis): a slot whose replica stopped renewing it returns after this.
    lease_s: float = Field(30.0, ge=1, le=3600)

    def weight(self, team: str) -> float:
        return self.weights.get(team, self.default_weight)

    def capacity_for(self, auto: int) -> int:
        """The capacity to enforce, given replicas x max_ongoing_requests of the model."""
        if self.capacity == "auto":
            return max(1, auto)
        return self.capacity
