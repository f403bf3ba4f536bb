"""The `Trace` of a request as OpenTelemetry spans: one SERVER root, children per stage.

Children are parented explicitly on the root's context (never through the ambient
context), so a stream's spans stay correct when its chunks are produced in another task,
and finishing in a different task than the start is fine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from types import TracebackType
from typing import TypeVar

from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, set_span_in_context

from serve.errors import GatewayError
from serve.record import RequestRecord
from serve.telemetry.record_attributes import is_error, record_attributes, span_name
from serve.telemetry.semconv import GEN_AI, RAYGATE, operation_name, provider_name
from serve.telemetry.trace import AttributeValue

__all__ = ["SpanTrace", "exception_type"]

T = TypeVar("T")
# A client that went away, or a consumer that closed a stream early: not a server error.
_CANCELLATIONS = (asyncio.CancelledError, GeneratorExit)


def exception_type(exc: BaseException) -> str:
    """``error.type`` for an exception: the OpenAI error code where there is one."""
    if isinstance(exc, GatewayError) and exc.code:
        return exc.code
    if isinstance(exc, _CANCELLATIONS):
        return "cancelled"
    return type(exc).__qualname__


class _ChildSpan:
    """A context manager around one child span; an exception fails it (and propagates)."""

    __slots__ = ("_span",)

    def __init__(self, span: Span) -> None:
        self._span = span

    def set(self, key: str, value: AttributeValue) -> None:
        self._span.set_attribute(key, value)

    def event(self, name: str) -> None:
        self._span.add_event(name)

    def fail(self, error_type: str) -> None:
        self._span.set_attribute(GEN_AI.ERROR_TYPE, error_type)
        self._span.set_status(Status(StatusCode.ERROR))

    def __enter__(self) -> _ChildSpan:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, _CANCELLATIONS):
            self._span.set_attribute(GEN_AI.ERROR_TYPE, "cancelled")
        elif exc is not None:
            self.fail(exception_type(exc))
        self._span.end()


class SpanTrace:
    __slots__ = ("_capture", "_context", "_endpoint", "_finished", "_first", "_root", "_tracer")

    def __init__(self, tracer: Tracer, root: Span, endpoint: str, capture_content: bool) -> None:
        self._tracer = tracer
        self._root = root
        self._context: Context = set_span_in_context(root)
        self._endpoint = endpoint
        self._capture = capture_content
        self._first = False
        self._finished = False

    @property
    def trace_id(self) -> str | None:
        context = self._root.get_span_context()
        return format(context.trace_id, "032x") if context.is_valid else None

    def request(
        self,
        model: str,
        *,
        stream: bool = False,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
    ) -> None:
        self._root.update_name(span_name(self._endpoint, model))
        attributes: dict[str, AttributeValue] = {
            GEN_AI.REQUEST_MODEL: model,
            GEN_AI.REQUEST_STREAM: stream,
        }
        if max_tokens is not None:
            attributes[GEN_AI.REQUEST_MAX_TOKENS] = max_tokens
        if temperature is not None:
            attributes[GEN_AI.REQUEST_TEMPERATURE] = temperature
        if top_p is not None:
            attributes[GEN_AI.REQUEST_TOP_P] = top_p
        self._root.set_attributes(attributes)

    def stage(self, name: str) -> _ChildSpan:
        return _ChildSpan(self._tracer.start_span(name, context=self._context))

    async def backend_stream(
        self, model: str, provider: str | None, attempt_no: int, chunks: AsyncIterator[T]
    ) -> AsyncIterator[T]:
        with self.backend_attempt(model, provider, attempt_no) as span:
            count = 0
            try:
                async for chunk in chunks:
                    if count == 0:
                        span.event(GEN_AI.FIRST_CHUNK_EVENT)
                    count += 1
                    yield chunk
            finally:
                span.set(RAYGATE.STREAM_CHUNKS, count)
                close = getattr(chunks, "aclose", None)
                if close is not None:
                    await close()

    def backend_attempt(self, model: str, provider: str | None, attempt_no: int) -> _ChildSpan:
        attributes: dict[str, AttributeValue] = {
            GEN_AI.OPERATION_NAME: operation_name(self._endpoint),
            GEN_AI.REQUEST_MODEL: model,
            RAYGATE.ATTEMPT: attempt_no,
        }
        if provider is not None:
            attributes[GEN_AI.PROVIDER_NAME] = provider_name(provider) or provider
            attributes[RAYGATE.BACKEND_KIND] = provider
        span = self._tracer.start_span(
            span_name(self._endpoint, model),
            context=self._context,
            kind=SpanKind.CLIENT,
            attributes=attributes,
        )
        return _ChildSpan(span)

    def first_chunk(self) -> None:
        if self._first or self._finished:
            return
        self._first = True
        root = self._root
        start = getattr(root, "start_time", None)
        if start is not None:
            seconds = (time.time_ns() - start) / 1e9
            root.set_attribute(GEN_AI.SERVER_TIME_TO_FIRST_TOKEN, seconds)
            root.set_attribute(GEN_AI.RESPONSE_TIME_TO_FIRST_CHUNK, seconds)
        root.add_event(GEN_AI.FIRST_CHUNK_EVENT)

    def finish(self, record: RequestRecord) -> None:
        if self._finished:
            return
        self._finished = True
        root = self._root
        if record.model_requested:
            root.update_name(span_name(record.endpoint, record.model_requested))
        root.set_attributes(record_attributes(record, self._capture))
        if is_error(record):
            root.set_status(Status(StatusCode.ERROR))
        root.end()
