"""Limits, budgets and what happens when the shared state is down: validated, frozen.

Standalone models (no `serve.config` import) that the platform config embeds per team,
per bootstrap key and once for the platform.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

__all__ = ["AdmissionPolicy", "AlertPolicy", "BudgetPolicy", "LimitPolicy"]

Tag = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LimitPolicy(_Frozen):
    """Per minute (sliding 60 s window) and at once. None: no limit of that kind."""

    rpm: int | None = Field(None, ge=1)
    tpm: int | None = Field(None, ge=1)
    concurrent: int | None = Field(None, ge=1)

    def over(self, base: LimitPolicy) -> LimitPolicy:
        """These limits where set, else the base's (a key's override of its team's)."""
        return LimitPolicy(
            rpm=self.rpm if self.rpm is not None else base.rpm,
            tpm=self.tpm if self.tpm is not None else base.tpm,
            concurrent=self.concurrent if self.concurrent is not None else base.concurrent,
        )


class BudgetPolicy(_Frozen):
    """A monthly (calendar month, UTC) spending cap in USD."""

    monthly_usd: float = Field(gt=0)
    # Fractions of the cap at which an alert goes out, once per threshold per month.
    alerts: tuple[float, ...] = (0.5, 0.8, 1.0)
    # hard: a request whose worst-case cost does not fit is refused (429 insufficient_quota).
    # soft: requests go on past the cap; alerts still fire.
    mode: Literal["hard", "soft"] = "hard"

    @model_validator(mode="after")
    def _thresholds(self) -> BudgetPolicy:
        if any(not 0 < a <= 10 for a in self.alerts) or len(set(self.alerts)) != len(self.alerts):
            raise ValueError("budget alerts must be distinct fractions in (0, 10]")
        return self


class AlertPolicy(_Frozen):
    # Where budget alerts are POSTed (JSON). A URL, or env:NAME when it carries a token.
    webhook_url: (
        Annotated[str, StringConstraints(pattern=r"^(https?://|env:[A-Za-z_][A-Za-z0-9_]*$)")]
        | None
    ) = None
    timeout_s: float = Field(5.0, gt=0, le=60)
    attempts: int = Field(3, ge=1, le=10)


class AdmissionPolicy(_Frozen):
    """Platform-wide admission settings."""

    # Output tokens reserved (and sent upstream as max_tokens) when a request names none.
    default_max_tokens: int = Field(1024, ge=1)
    # What tokens-per-minute counts: prompt and completion, or only the completion.
    tpm_counts: Literal["input_and_output", "output"] = "input_and_output"
    # When the shared state (Redis) cannot be reached: refuse with 503, or admit against
    # a per-replica limit of fail_open_rpm requests per minute per key (budgets unchecked).
    on_state_unavailable: Literal["fail_closed", "fail_open"] = "fail_closed"
    fail_open_rpm: int = Field(60, ge=1)
    # A reservation not settled by then is dropped (its replica died mid-request).
    lease_s: float = Field(900.0, ge=10, le=86_400)
    alerts: AlertPolicy = AlertPolicy()


TeamBudgets = Mapping[Tag, BudgetPolicy]
