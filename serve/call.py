"""One request's bookkeeping while it runs: who asked, what answered, what it cost.

The HTTP edge opens a `Call` per request; the gateway fills it in as the request moves
through its stages; `finish` turns it into the one `RequestRecord` every observer gets
(audit, metrics, Datadog), exactly once: on an answer, on an error, or, for a stream, when
the stream ends, breaks or the client goes away.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from serve.auth.authenticator import Principal
from serve.cache import CacheMode
from serve.record import Endpoint, Outcome, PromptPolicy, RequestObserver, RequestRecord

if TYPE_CHECKING:
    from serve.telemetry import Trace

__all__ = ["PROJECT_HEADER", "Call"]

log = logging.getLogger("raygate.call")

PROJECT_HEADER = "x-raygate-project"
_PROJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


@dataclass(slots=True)
class Call:
    request_id: str
    endpoint: Endpoint
    observers: Sequence[RequestObserver] = ()
    cache_mode: CacheMode = CacheMode.USE
    project: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)  # the caller's (traceparent)
    started: float = field(default_factory=time.perf_counter)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    principal: Principal | None = None
    stream: bool = False
    model_requested: str | None = None
    model_served: str | None = None
    provider: str | None = None
    fallback_from: str | None = None
    cache: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_usd: float = 0.0
    finish_reason: str | None = None
    ttft_ms: float | None = None
    guardrails: dict[str, int] = field(default_factory=dict)
    prompt_policy: PromptPolicy = "masked"
    prompt: str | None = None
    response: str | None = None
    trace_id: str | None = None
    backend_called: bool = False  # a model was called (failures after it are errors)
    attempts: dict[str, int] = field(default_factory=dict)  # tries per model
    trace: Trace | None = None
    # A stream's record is written when the stream ends, not when the headers go out.
    deferred: bool = False
    record: RequestRecord | None = None

    @staticmethod
    def project_of(value: str | None) -> str | None:
        return value if value is not None and _PROJECT.match(value) else None

    def first_chunk(self) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = (time.perf_counter() - self.started) * 1000
            if self.trace is not None:
                self.trace.first_chunk()

    def stage(self, name: str) -> AbstractContextManager[Any]:
        """A child span of the request (admission, guardrails, cache), when traced."""
        return self.trace.stage(name) if self.trace is not None else nullcontext()

    def usage(self, input_tokens: int, output_tokens: int, cached: int = 0) -> None:
        self.input_tokens, self.output_tokens, self.cached_input_tokens = (
            input_tokens,
            output_tokens,
            cached,
        )

    def finish(self, status: int, outcome: Outcome, error_code: str | None = None) -> None:
        """Write the record (once) and hand it to every observer."""
        if self.record is not None:
            return
        principal = self.principal
        self.record = RequestRecord(
            request_id=self.request_id,
            started_at=self.started_at,
            latency_ms=(time.perf_counter() - self.started) * 1000,
            endpoint=self.endpoint,
            stream=self.stream,
            status=status,
            outcome=outcome,
            error_code=error_code,
            ttft_ms=self.ttft_ms,
            team=principal.team if principal else None,
            key_id=principal.key_id if principal else None,
            subject=principal.subject if principal else None,
            project=self.project,
            model_requested=self.model_requested,
            model_served=self.model_served,
            provider=self.provider,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cached_input_tokens=self.cached_input_tokens,
            cost_usd=self.cost_usd,
            cache=self.cache,
            fallback_from=self.fallback_from,
            finish_reason=self.finish_reason,
            guardrails=dict(self.guardrails),
            prompt_policy=self.prompt_policy,
            prompt=self.prompt if self.prompt_policy != "none" else None,
            response=self.response if self.prompt_policy != "none" else None,
            trace_id=self.trace_id,
        )
        if self.trace is not None:
            try:
                self.trace.finish(self.record)
            except Exception:
                log.exception("trace finish failed")
        for observer in self.observers:
            try:
                observer.observe(self.record)
            except Exception:  # an observer must never break the request path
                log.exception("request observer %s failed", type(observer).__name__)
