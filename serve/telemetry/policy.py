"""What raygate emits about its requests: frozen pydantic models the platform config embeds.

Observable by default: OpenTelemetry traces (exported over OTLP/HTTP once an endpoint is
configured) and Prometheus metrics are on; Datadog LLM Observability is opt-in. Private by
default: `capture_content` is off, so no prompt or answer text leaves through telemetry.
Secrets (the OTLP endpoint and its headers may carry tokens) are ``env:NAME`` references,
resolved in the replica by `serve.settings`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ENV_REF",
    "DatadogPolicy",
    "ExporterKind",
    "OtelPolicy",
    "PrometheusPolicy",
    "TelemetryPolicy",
]

# The same shape as serve.settings.SECRET_REF (kept literal: this package must not need
# the config tree, and the pattern is part of the schema the config shows).
ENV_REF = r"^env:[A-Za-z_][A-Za-z0-9_]*$"
_ENV_OR_URL = r"^(env:[A-Za-z_][A-Za-z0-9_]*|https?://[^\s]+)$"

ExporterKind = Literal["otlp", "console", "memory", "none"]

# Request latency covers streams of minutes; TTFT is what users feel.
DEFAULT_LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
DEFAULT_TTFT_BUCKETS_S = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OtelPolicy(_Frozen):
    """OpenTelemetry tracing with a private TracerProvider (the global one is left alone)."""

    enabled: bool = True
    # Default: "otlp" when an endpoint is set, else "none" (spans are not recorded at all).
    exporter: ExporterKind = "none"
    # OTLP/HTTP URL as env:NAME: the collector base (http://otel-collector:4318) or the
    # full traces URL (…/v1/traces).
    endpoint: str | None = Field(None, pattern=ENV_REF)
    # env:NAME holding "key=value,key2=value2" (OTEL_EXPORTER_OTLP_HEADERS format).
    headers: str | None = Field(None, pattern=ENV_REF)
    service_name: str = Field("raygate", min_length=1)
    sample_ratio: float = Field(1.0, ge=0.0, le=1.0)
    export_timeout_s: float = Field(10.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _default_exporter(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("exporter") is None:
            data = {k: v for k, v in data.items() if k != "exporter"}
            data["exporter"] = "otlp" if data.get("endpoint") else "none"
        return data

    @model_validator(mode="after")
    def _endpoint_for_otlp(self) -> OtelPolicy:
        if self.exporter == "otlp" and self.endpoint is None:
            raise ValueError("otel.exporter 'otlp' needs otel.endpoint (env:NAME of the URL)")
        return self

    @property
    def recording(self) -> bool:
        """Whether spans are created at all (otherwise the request path gets no-ops)."""
        return self.enabled and self.exporter != "none"


class DatadogPolicy(_Frozen):
    """Datadog LLM Observability through the local Datadog Agent (never agentless)."""

    enabled: bool = False
    # The agent's trace intake: a literal URL or env:NAME (on GKE the DaemonSet's host IP).
    agent_url: str = Field("http://127.0.0.1:8126", pattern=_ENV_OR_URL)
    ml_app: str = Field("raygate", min_length=1)
    env: str | None = None
    service: str = Field("raygate", min_length=1)
    queue_size: int = Field(10_000, ge=1)  # records waiting for submission; beyond: dropped


class PrometheusPolicy(_Frozen):
    enabled: bool = True
    # "ray": ray.util.metrics (Ray's metrics endpoint, what a Serve replica needs);
    # "prometheus_client": a prometheus_client registry (tests, tools outside Ray).
    sink: Literal["ray", "prometheus_client"] = "ray"
    latency_buckets_s: tuple[float, ...] = DEFAULT_LATENCY_BUCKETS_S
    ttft_buckets_s: tuple[float, ...] = DEFAULT_TTFT_BUCKETS_S

    @model_validator(mode="after")
    def _buckets_ascending(self) -> PrometheusPolicy:
        for name in ("latency_buckets_s", "ttft_buckets_s"):
            buckets = getattr(self, name)
            if not buckets or any(b <= 0 for b in buckets) or list(buckets) != sorted(set(buckets)):
                raise ValueError(f"prometheus.{name} must be positive and strictly ascending")
        return self


class TelemetryPolicy(_Frozen):
    otel: OtelPolicy = OtelPolicy()
    datadog: DatadogPolicy = DatadogPolicy()
    prometheus: PrometheusPolicy = PrometheusPolicy()
    # Off: prompts and answers never leave through spans or Datadog. On: the record's
    # prompt/response (already shaped by the team's prompt_policy) are attached.
    capture_content: bool = False
