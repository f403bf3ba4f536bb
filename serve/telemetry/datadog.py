"""Datadog LLM Observability: one LLM span per finished request, through ddtrace's LLMObs.

Agent mode only (the node's Datadog Agent forwards through its EVP proxy; no API key in
raygate), APM tracing in ddtrace off (traces go out over OpenTelemetry; ddtrace only
ships the LLM Observability events, to ``/evp_proxy/v2/api/v2/llmobs``), and no
integrations (ddtrace patches nothing in the process). ddtrace is imported only when
this observer is built. `observe` enqueues; a daemon thread submits, so a slow or absent
agent never blocks a request: a full queue drops records and counts them.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import Any

from serve.record import RequestRecord
from serve.settings import resolve_optional
from serve.telemetry.policy import DatadogPolicy
from serve.telemetry.record_attributes import error_type, is_error, span_name

__all__ = ["DatadogObserver", "llm_span_fields", "model_provider"]

log = logging.getLogger("raygate.telemetry")

# raygate backend kind -> the model_provider names Datadog's own integrations use.
_PROVIDERS = {
    "vertex": "google",
    "bedrock": "amazon_bedrock",
    "openai_compatible": "openai",
}


def model_provider(backend_kind: str | None) -> str:
    if backend_kind is None:
        return "unknown"
    return _PROVIDERS.get(backend_kind, backend_kind)


def llm_span_fields(record: RequestRecord, capture_content: bool) -> dict[str, Any]:
    """What one record becomes in LLM Observability (pure; the thread submits it)."""
    metrics: dict[str, float] = {
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "total_tokens": record.input_tokens + record.output_tokens,
        "total_cost": record.cost_usd,
    }
    if record.cached_input_tokens:
        metrics["cache_read_input_tokens"] = record.cached_input_tokens
    if record.ttft_ms is not None:
        metrics["time_to_first_token"] = record.ttft_ms / 1000
    tags = {
        "team": record.team or "none",
        "key_id": record.key_id or "none",
        "endpoint": record.endpoint,
        "outcome": record.outcome,
        "request_id": record.request_id,
    }
    optional = {
        "project": record.project,
        "cache": record.cache,
        "fallback_from": record.fallback_from,
        "model_requested": record.model_requested,
        "error_code": record.error_code,
        "otel_trace_id": record.trace_id,  # joins the span to the OTLP trace
    }
    tags.update({k: v for k, v in optional.items() if v is not None})
    for key, count in record.guardrails.items():
        tags[f"guardrail.{key}"] = str(count)
    fields: dict[str, Any] = {
        "name": span_name(record.endpoint, record.model_requested),
        "model_name": record.model_served or record.model_requested or "unknown",
        "model_provider": model_provider(record.provider),
        "metrics": metrics,
        "tags": tags,
        "metadata": {"stream": record.stream, "status": record.status},
        "error_type": error_type(record) if is_error(record) else None,
        "start_ns": int(record.started_at.timestamp() * 1e9),
        "duration_s": record.latency_ms / 1000,
    }
    if record.finish_reason is not None:
        fields["metadata"]["finish_reason"] = record.finish_reason
    if capture_content:
        fields["input"] = record.prompt
        fields["output"] = record.response
    return fields


class DatadogObserver:
    def __init__(self, policy: DatadogPolicy, capture_content: bool = False) -> None:
        self._capture = capture_content
        self._queue: queue.Queue[RequestRecord | None] = queue.Queue(policy.queue_size)
        self.dropped = 0
        self.submitted = 0
        self._llmobs = _enable(policy)
        self._thread = threading.Thread(target=self._run, name="raygate-datadog", daemon=True)
        self._thread.start()

    def observe(self, record: RequestRecord) -> None:
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while True:
            record = self._queue.get()
            if record is None:
                return
            try:
                self._submit(llm_span_fields(record, self._capture))
                self.submitted += 1
            except Exception:
                log.exception("datadog: could not submit request %s", record.request_id)

    def _submit(self, fields: dict[str, Any]) -> None:
        llmobs = self._llmobs
        span = llmobs.llm(
            model_name=fields["model_name"],
            model_provider=fields["model_provider"],
            name=fields["name"],
        )
        span.start_ns = fields["start_ns"]
        llmobs.annotate(
            span,
            input_data=fields.get("input"),
            output_data=fields.get("output"),
            metadata=fields["metadata"],
            metrics=fields["metrics"],
            tags=fields["tags"],
        )
        if fields["error_type"] is not None:
            span.error = 1
            span.set_tag("error.type", fields["error_type"])
        span.finish(finish_time=fields["start_ns"] / 1e9 + fields["duration_s"])

    async def aclose(self, timeout_s: float = 10.0) -> None:
        """Submit what is queued, flush LLMObs to the agent, stop (bounded wait)."""
        await asyncio.to_thread(self._drain, timeout_s)

    def _drain(self, timeout_s: float) -> None:
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            log.warning(
                "datadog: queue still full at shutdown; %d queued records lost", self._queue.qsize()
            )
        self._thread.join(timeout_s)
        self._llmobs.flush()
        self._llmobs.disable()


def _enable(policy: DatadogPolicy) -> Any:
    """Point ddtrace at the agent and enable LLMObs (process-wide: ddtrace is global)."""
    from ddtrace.internal.settings._agent import config as agent_config
    from ddtrace.llmobs import LLMObs
    from ddtrace.trace import tracer

    url = resolve_optional(policy.agent_url)
    assert url is not None
    if LLMObs.enabled:  # one observer per process; a rebuilt one takes over
        LLMObs.disable()
    agent_config.trace_agent_url = url  # before the writers are created
    tracer.configure(apm_tracing_disabled=True)
    LLMObs.enable(
        ml_app=policy.ml_app,
        integrations_enabled=False,
        agentless_enabled=False,
        env=policy.env,
        service=policy.service,
    )
    return LLMObs
