"""The seam the request path traces through: one `Trace` per request.

`Telemetry.start` returns a `SpanTrace` (OpenTelemetry spans) or, when tracing is off, a
`NoopTrace` whose methods do nothing, so the gateway calls the same code either way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from typing import Protocol, TypeVar

from serve.record import RequestRecord

__all__ = ["AttributeValue", "SpanHandle", "Trace"]

AttributeValue = str | bool | int | float | tuple[str, ...]
T = TypeVar("T")


class SpanHandle(Protocol):
    """What a stage may add to its own span while it runs."""

    def set(self, key: str, value: AttributeValue) -> None: ...

    def event(self, name: str) -> None: ...

    def fail(self, error_type: str) -> None:
        """Mark the span failed without raising (e.g. a guardrail that blocked)."""
        ...


class Trace(Protocol):
    @property
    def trace_id(self) -> str | None:
        """W3C trace id (32 hex) for the record and the logs; None when not traced."""
        ...

    def request(
        self,
        model: str,
        *,
        stream: bool = False,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
    ) -> None:
        """What the caller asked for, once the body is parsed (names the root span)."""
        ...

    def stage(self, name: str) -> AbstractContextManager[SpanHandle]:
        """A child span, e.g. ``raygate.admission``; an exception marks it failed."""
        ...

    def backend_attempt(
        self, model: str, provider: str | None, attempt_no: int
    ) -> AbstractContextManager[SpanHandle]:
        """A client span for one try on one model (``provider`` is the backend kind)."""
        ...

    def backend_stream(
        self, model: str, provider: str | None, attempt_no: int, chunks: AsyncIterator[T]
    ) -> AsyncIterator[T]:
        """``chunks`` inside a client span that ends with the stream (exhausted, failed or
        closed early); what the executor's ``open_stream`` factory returns."""
        ...

    def first_chunk(self) -> None:
        """The first chunk of a stream went out: time to first token (first call wins)."""
        ...

    def finish(self, record: RequestRecord) -> None:
        """Attributes from the finished request, status, and the end of the root span."""
        ...
