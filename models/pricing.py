"""Model prices: versioned with effective dates, per token or per GPU-hour.

External models are priced per million tokens (input, output, cached input). A
self-hosted model is priced per GPU-hour and converted to per-token prices from its
measured throughput: with ``gpus`` GPUs at ``gpu_hour_usd`` each serving
``output_tokens_per_s`` (and ``input_tokens_per_s`` for prompt processing) at the
measured load, one output token costs ``gpus * gpu_hour_usd / 3600 / output_tokens_per_s``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["GpuHourPrice", "Price", "PriceVersion", "TokenPrice", "price_at"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TokenPrice(_Frozen):
    kind: Literal["per_token"] = "per_token"
    effective_from: dt.date
    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    cached_input_per_mtok: float | None = Field(None, ge=0)

    def price(self) -> Price:
        cached = self.cached_input_per_mtok
        return Price(
            self.input_per_mtok / 1e6,
            self.output_per_mtok / 1e6,
            (cached if cached is not None else self.input_per_mtok) / 1e6,
        )


class GpuHourPrice(_Frozen):
    kind: Literal["per_gpu_hour"]
    effective_from: dt.date
    gpu_hour_usd: float = Field(gt=0)
    gpus: int = Field(1, ge=1)
    # Measured at the deployment's target load (bench or production metrics).
    output_tokens_per_s: float = Field(gt=0)
    input_tokens_per_s: float = Field(gt=0)

    def price(self) -> Price:
        per_second = self.gpu_hour_usd * self.gpus / 3600
        per_input = per_second / self.input_tokens_per_s
        return Price(per_input, per_second / self.output_tokens_per_s, per_input)


# Not discriminated: `kind` may be left out of a per-token price (the common case).
PriceVersion = TokenPrice | GpuHourPrice


@dataclass(frozen=True, slots=True)
class Price:
    """USD per single token."""

    input: float
    output: float
    cached_input: float

    def cost(self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> float:
        fresh = max(0, input_tokens - cached_input_tokens)
        return (
            fresh * self.input
            + cached_input_tokens * self.cached_input
            + output_tokens * self.output
        )


FREE = Price(0.0, 0.0, 0.0)


def price_at(versions: Sequence[TokenPrice | GpuHourPrice], day: dt.date) -> Price:
    """The version in effect on ``day`` (the latest that started on or before it)."""
    current = None
    for version in versions:
        if version.effective_from <= day and (
            current is None or version.effective_from >= current.effective_from
        ):
            current = version
    return current.price() if current is not None else FREE
