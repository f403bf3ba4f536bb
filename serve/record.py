"""What one finished request leaves behind, and the seam for everything that consumes it.

The gateway builds one `RequestRecord` per request when it ends (answered, failed,
rejected or cancelled; for a stream, when the stream ends) and hands it to every
`RequestObserver`: the audit outbox, Prometheus metrics, Datadog LLM Observability. A
record holds no secret: no key, no raw prompt unless the team's policy says ``full`` (the
audit store encrypts those), guardrail actions as value-free counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

__all__ = ["Endpoint", "Outcome", "PromptPolicy", "RequestObserver", "RequestRecord"]

Endpoint = Literal["chat", "completions", "embeddings"]
# ok: answered; error: failed after admission (backend, guardrail block, internal);
# rejected: refused before any backend call (auth, validation, limits, budget);
# cancelled: the client went away before the answer ended.
Outcome = Literal["ok", "error", "rejected", "cancelled"]
PromptPolicy = Literal["none", "masked", "full"]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    request_id: str
    started_at: datetime  # UTC
    latency_ms: float  # until the last byte of the answer (or the error)
    endpoint: Endpoint
    stream: bool
    status: int  # the HTTP status sent (200 for a stream that started, even if it broke)
    outcome: Outcome
    error_code: str | None = None  # the OpenAI error `code` when there was an error
    ttft_ms: float | None = None  # streams: time to the first chunk
    team: str | None = None  # None when authentication failed
    key_id: str | None = None
    subject: str | None = None  # JWT `sub`
    project: str | None = None  # the caller's project tag (x-raygate-project header)
    model_requested: str | None = None
    model_served: str | None = None
    provider: str | None = None  # backend kind of the model that answered, e.g. "vertex"
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_usd: float = 0.0
    cache: str | None = None  # x-raygate-cache status
    fallback_from: str | None = None  # the primary, when a fallback answered
    finish_reason: str | None = None
    guardrails: Mapping[str, int] = field(default_factory=dict)  # e.g. {"redacted.EMAIL": 2}
    prompt_policy: PromptPolicy = "masked"
    prompt: str | None = None  # per prompt_policy: None, redacted text, or the full text
    response: str | None = None  # the answer's text, under the same policy
    trace_id: str | None = None  # W3C trace id (32 hex) of the request's span


class RequestObserver(Protocol):
    def observe(self, record: RequestRecord) -> None:
        """Take a finished request. Must not block or raise: queue, then work off-path."""
        ...

    async def aclose(self) -> None:
        """Flush what is queued (bounded wait) and release resources."""
        ...
