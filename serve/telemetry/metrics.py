"""Prometheus metrics from finished requests: a `RequestObserver` over a `MetricSink`.

Every label set is bounded (see `labels.py`): team and model take configured names only,
never key ids or request ids. Updating a counter is an in-memory add under a lock, so
`observe` does it inline (no queue) and never raises.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from serve.record import RequestRecord
from serve.telemetry.labels import AllowedValues, CappedValues, status_class
from serve.telemetry.metric_sink import MetricSink
from serve.telemetry.policy import PrometheusPolicy

__all__ = ["CACHE_STATUSES", "METRIC_NAMES", "MetricsObserver", "limit_of"]

log = logging.getLogger("raygate.telemetry")

CACHE_STATUSES = ("hit", "semantic-hit", "miss", "bypass", "uncacheable")
METRIC_NAMES = (
    "raygate_requests",
    "raygate_errors",
    "raygate_request_latency_seconds",
    "raygate_time_to_first_token_seconds",
    "raygate_tokens",
    "raygate_cost_usd",
    "raygate_cache_events",
    "raygate_guardrail_actions",
    "raygate_limit_rejections",
)


def limit_of(record: RequestRecord) -> str | None:
    """The limit that refused a request (its error code), or None if none did.

    Admission refusals are records with outcome ``rejected`` and a 429 (rate limits,
    token limits, budgets) or a code naming an exceeded limit / exhausted quota."""
    if record.outcome != "rejected" or record.error_code is None:
        return None
    code = record.error_code
    if record.status == 429 or code.endswith("_exceeded") or code == "insufficient_quota":
        return code
    return None


class MetricsObserver:
    def __init__(
        self,
        sink: MetricSink,
        policy: PrometheusPolicy,
        *,
        teams: Iterable[str],
        models: Iterable[str],
    ) -> None:
        """``models``: every public name (models, aliases, routes) that may be a label."""
        self._team = AllowedValues(teams)
        self._model = AllowedValues(models)
        self._code = CappedValues(64)
        self._limit = CappedValues(32)
        self._cache = CappedValues(len(CACHE_STATUSES) + 4, CACHE_STATUSES)
        self._action = CappedValues(32)
        self._entity = CappedValues(128)
        base = ("team", "model")
        self._requests = sink.counter(
            "raygate_requests",
            "Requests by team, model, endpoint, HTTP status class and outcome.",
            (*base, "endpoint", "status_class", "outcome"),
        )
        self._errors = sink.counter(
            "raygate_errors",
            "Requests that did not end ok, by OpenAI error code.",
            (*base, "endpoint", "outcome", "code"),
        )
        self._latency = sink.histogram(
            "raygate_request_latency_seconds",
            "Time until the last byte of the answer (or the error).",
            (*base, "endpoint", "outcome"),
            policy.latency_buckets_s,
        )
        self._ttft = sink.histogram(
            "raygate_time_to_first_token_seconds",
            "Streams: time until the first chunk.",
            (*base, "endpoint"),
            policy.ttft_buckets_s,
        )
        self._tokens = sink.counter(
            "raygate_tokens",
            "Tokens by direction (input, output, cached_input).",
            (*base, "direction"),
        )
        self._cost = sink.counter("raygate_cost_usd", "Priced cost in USD.", base)
        self._cache_events = sink.counter(
            "raygate_cache_events",
            "Response cache lookups by x-raygate-cache status.",
            (*base, "status"),
        )
        self._guardrails = sink.counter(
            "raygate_guardrail_actions",
            "Guardrail actions (e.g. redacted) by entity type.",
            (*base, "action", "entity"),
        )
        self._rejections = sink.counter(
            "raygate_limit_rejections",
            "Requests refused by a limit (its error code).",
            (*base, "limit"),
        )

    def observe(self, record: RequestRecord) -> None:
        try:
            self._record(record)
        except Exception:  # a metrics bug must never fail a request
            log.exception("metrics: could not record request %s", record.request_id)

    def _record(self, record: RequestRecord) -> None:
        team = self._team(record.team)
        model = self._model(record.model_served or record.model_requested)
        base = {"team": team, "model": model}
        endpoint = {**base, "endpoint": record.endpoint}
        self._requests.inc(
            1,
            {**endpoint, "status_class": status_class(record.status), "outcome": record.outcome},
        )
        if record.outcome != "ok":
            code = "cancelled" if record.outcome == "cancelled" else record.error_code
            self._errors.inc(1, {**endpoint, "outcome": record.outcome, "code": self._code(code)})
        self._latency.observe(record.latency_ms / 1000, {**endpoint, "outcome": record.outcome})
        if record.ttft_ms is not None:
            self._ttft.observe(record.ttft_ms / 1000, endpoint)
        for direction, count in (
            ("input", record.input_tokens),
            ("output", record.output_tokens),
            ("cached_input", record.cached_input_tokens),
        ):
            if count:
                self._tokens.inc(count, {**base, "direction": direction})
        if record.cost_usd:
            self._cost.inc(record.cost_usd, base)
        if record.cache is not None:
            self._cache_events.inc(1, {**base, "status": self._cache(record.cache)})
        for key, count in record.guardrails.items():
            action, _, entity = key.partition(".")
            labels = {
                **base,
                "action": self._action(action),
                "entity": self._entity(entity or None),
            }
            self._guardrails.inc(count, labels)
        limit = limit_of(record)
        if limit is not None:
            self._rejections.inc(1, {**base, "limit": self._limit(limit)})

    async def aclose(self) -> None:
        return None
