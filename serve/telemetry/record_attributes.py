"""A finished `RequestRecord` as span attributes (pure: no OpenTelemetry objects here).

No key material, no request text unless ``capture_content``; the key *id* is not a secret
(it is the public prefix of a virtual key) and helps find a caller's requests.
"""

from __future__ import annotations

import json

from serve.record import RequestRecord
from serve.telemetry.semconv import GEN_AI, RAYGATE, operation_name, provider_name
from serve.telemetry.trace import AttributeValue

__all__ = ["error_type", "is_error", "record_attributes", "span_name"]


def span_name(endpoint: str, model: str | None) -> str:
    """``{gen_ai.operation.name} {gen_ai.request.model}`` (the operation alone without one)."""
    operation = operation_name(endpoint)
    return f"{operation} {model}" if model else operation


def is_error(record: RequestRecord) -> bool:
    """ERROR status: the request failed after admission, or the server answered 5xx.
    Refusals (4xx before any backend call) and client cancellations are not server
    errors; they still carry ``error.type``."""
    return record.outcome == "error" or record.status >= 500


def error_type(record: RequestRecord) -> str | None:
    if record.outcome == "cancelled":
        return "cancelled"
    if record.outcome == "ok":
        return None
    return record.error_code or str(record.status)


def record_attributes(record: RequestRecord, capture_content: bool) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        GEN_AI.OPERATION_NAME: operation_name(record.endpoint),
        GEN_AI.REQUEST_STREAM: record.stream,
        GEN_AI.HTTP_STATUS: record.status,
        RAYGATE.REQUEST_ID: record.request_id,
        RAYGATE.ENDPOINT: record.endpoint,
        RAYGATE.OUTCOME: record.outcome,
        GEN_AI.USAGE_INPUT_TOKENS: record.input_tokens,
        GEN_AI.USAGE_OUTPUT_TOKENS: record.output_tokens,
        RAYGATE.COST_USD: record.cost_usd,
    }
    optional: dict[str, AttributeValue | None] = {
        GEN_AI.PROVIDER_NAME: provider_name(record.provider),
        RAYGATE.BACKEND_KIND: record.provider,
        GEN_AI.REQUEST_MODEL: record.model_requested,
        GEN_AI.RESPONSE_MODEL: record.model_served,
        GEN_AI.RESPONSE_FINISH_REASONS: (
            (record.finish_reason,) if record.finish_reason is not None else None
        ),
        GEN_AI.USAGE_CACHE_READ_INPUT_TOKENS: record.cached_input_tokens or None,
        RAYGATE.TEAM: record.team,
        RAYGATE.KEY_ID: record.key_id,
        RAYGATE.PROJECT: record.project,
        RAYGATE.CACHE: record.cache,
        RAYGATE.FALLBACK_FROM: record.fallback_from,
        GEN_AI.ERROR_TYPE: error_type(record),
    }
    if record.ttft_ms is not None:
        optional[GEN_AI.SERVER_TIME_TO_FIRST_TOKEN] = record.ttft_ms / 1000
        optional[GEN_AI.RESPONSE_TIME_TO_FIRST_CHUNK] = record.ttft_ms / 1000
    attributes.update({k: v for k, v in optional.items() if v is not None})
    if record.guardrails:
        for action, count in record.guardrails.items():
            attributes[RAYGATE.GUARDRAILS_PREFIX + action] = count
        attributes[RAYGATE.GUARDRAILS_TOTAL] = sum(record.guardrails.values())
    if capture_content:
        if record.prompt is not None:
            attributes[GEN_AI.INPUT_MESSAGES] = _messages("user", record.prompt)
        if record.response is not None:
            attributes[GEN_AI.OUTPUT_MESSAGES] = _messages("assistant", record.response)
    return attributes


def _messages(role: str, text: str) -> str:
    # The convention's message shape, JSON-encoded (span attributes cannot nest).
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])
