"""`Telemetry`: built once per ingress replica; `start` opens one `Trace` per request.

The TracerProvider is private to this object: the process-global provider is never set
(Ray may install its own, and two gateways in one process must not share exporters).
With tracing off (`otel.enabled: false` or no exporter), `start` returns a `NoopTrace`
and costs a dictionary lookup.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Tracer

from serve.record import Endpoint
from serve.telemetry.exporter import build_exporter, span_processor
from serve.telemetry.noop_trace import NOOP_TRACE, NoopTrace
from serve.telemetry.policy import TelemetryPolicy
from serve.telemetry.propagation import caller_context, caller_trace_id
from serve.telemetry.semconv import GEN_AI, RAYGATE, operation_name
from serve.telemetry.span_trace import SpanTrace
from serve.telemetry.trace import Trace

__all__ = ["INSTRUMENTATION_NAME", "Telemetry"]

INSTRUMENTATION_NAME = "raygate.gateway"


class Telemetry:
    def __init__(self, policy: TelemetryPolicy, *, exporter: SpanExporter | None = None) -> None:
        """``exporter`` replaces the one the policy names (tests pass an in-memory one)."""
        self.policy = policy
        otel = policy.otel
        if exporter is None and otel.recording:
            exporter = build_exporter(otel)
        self.exporter: SpanExporter | None = exporter if otel.enabled else None
        self._provider: TracerProvider | None = None
        self._tracer: Tracer | None = None
        if self.exporter is not None:
            self._provider = TracerProvider(
                resource=Resource({SERVICE_NAME: otel.service_name}),
                sampler=ParentBased(TraceIdRatioBased(otel.sample_ratio)),
                shutdown_on_exit=False,
            )
            self._provider.add_span_processor(span_processor(self.exporter))
            self._tracer = self._provider.get_tracer(INSTRUMENTATION_NAME)

    @property
    def tracing(self) -> bool:
        return self._tracer is not None

    def start(self, endpoint: Endpoint, headers: Mapping[str, str], request_id: str) -> Trace:
        """The root span of one request, child of the caller's ``traceparent`` if any."""
        tracer = self._tracer
        if tracer is None:
            trace_id = caller_trace_id(headers)
            return NOOP_TRACE if trace_id is None else NoopTrace(trace_id)
        operation = operation_name(endpoint)
        root = tracer.start_span(
            operation,
            context=caller_context(headers),
            kind=SpanKind.SERVER,
            attributes={GEN_AI.OPERATION_NAME: operation, RAYGATE.REQUEST_ID: request_id},
        )
        return SpanTrace(tracer, root, endpoint, self.policy.capture_content)

    def force_flush(self, timeout_s: float = 10.0) -> bool:
        """Export what is queued now (bounded wait); True when everything went out."""
        if self._provider is None:
            return True
        return self._provider.force_flush(int(timeout_s * 1000))

    def shutdown(self) -> None:
        """Flush and stop the exporter thread (replica shutdown)."""
        if self._provider is not None:
            self._provider.shutdown()
            self._provider = None
            self._tracer = None
