"""W3C Trace Context from the caller's headers (``traceparent``, ``tracestate``).

Only the W3C propagator: the process-global propagator (``OTEL_PROPAGATORS``, or whatever
Ray installs) is not consulted, so a replica behaves the same wherever it runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["caller_context", "caller_trace_id"]

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_INVALID_TRACE_ID = "0" * 32


class _Headers(Getter[Mapping[str, str]]):
    """Header lookup for the propagator: exact name, then any case (ASGI lower-cases)."""

    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = _header(carrier, key)
        return [value] if value is not None else None

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier.keys())


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    for key, item in headers.items():
        if key.lower() == name:
            return item
    return None


_GETTER = _Headers()


def caller_context(headers: Mapping[str, str]) -> Context | None:
    """The caller's span as remote parent, or None without a (valid) ``traceparent``."""
    if _header(headers, "traceparent") is None:
        return None
    context = _PROPAGATOR.extract(headers, getter=_GETTER)
    return context or None


def caller_trace_id(headers: Mapping[str, str]) -> str | None:
    """The caller's trace id without building any OpenTelemetry object (tracing off)."""
    value = _header(headers, "traceparent")
    if value is None:
        return None
    match = _TRACEPARENT.match(value.strip().lower())
    if match is None or match.group(1) == _INVALID_TRACE_ID:
        return None
    return match.group(1)
