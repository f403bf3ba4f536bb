"""The `Trace` of a request when tracing is off: every method returns at once.

It still carries the caller's trace id (from ``traceparent``) so records and logs can be
joined with the caller's trace even when raygate exports no spans itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import TypeVar

from serve.record import RequestRecord
from serve.telemetry.trace import AttributeValue

__all__ = ["NOOP_TRACE", "NoopTrace"]

T = TypeVar("T")


class _NoopSpan:
    __slots__ = ()

    def set(self, key: str, value: AttributeValue) -> None:
        return None

    def event(self, name: str) -> None:
        return None

    def fail(self, error_type: str) -> None:
        return None

    def __enter__(self) -> _NoopSpan:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


_NOOP_SPAN = _NoopSpan()


class NoopTrace:
    __slots__ = ("_trace_id",)

    def __init__(self, trace_id: str | None = None) -> None:
        self._trace_id = trace_id

    @property
    def trace_id(self) -> str | None:
        return self._trace_id

    def request(
        self,
        model: str,
        *,
        stream: bool = False,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
    ) -> None:
        return None

    def stage(self, name: str) -> _NoopSpan:
        return _NOOP_SPAN

    def backend_attempt(self, model: str, provider: str | None, attempt_no: int) -> _NoopSpan:
        return _NOOP_SPAN

    def backend_stream(
        self, model: str, provider: str | None, attempt_no: int, chunks: AsyncIterator[T]
    ) -> AsyncIterator[T]:
        return chunks

    def first_chunk(self) -> None:
        return None

    def finish(self, record: RequestRecord) -> None:
        return None


NOOP_TRACE = NoopTrace()
