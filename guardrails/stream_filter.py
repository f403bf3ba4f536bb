"""Output filtering of model text, delta by delta: PII/secrets, deny patterns, leakage.

`feed(delta)` returns the text that is safe to send now; at most `window` characters are
held back, so a match split across deltas is still caught before any of it is sent.
`finish()` checks and flushes the rest. A "blocked" chunk tells the caller to stop the
stream (and what was already sent stays sent: block reasons never contain the value).
Reversible placeholders are restored after filtering (the filter sees what the provider
wrote, so the caller's own data coming back is not masked as a leak).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from guardrails.detector import Detector
from guardrails.leakage import LeakageMeter
from guardrails.policy import OutputPolicy
from guardrails.redaction import MASK
from guardrails.restore import RestoreMap, StreamRestorer

__all__ = ["StreamChunk", "StreamFilter"]

_CONTEXT = 64  # already-sent characters kept as look-behind context for the recognizers


@dataclass(frozen=True)
class StreamChunk:
    text: str
    blocked: bool = False
    reason: str | None = None  # value-free, e.g. "output contains CREDIT_CARD"


class StreamFilter:
    def __init__(
        self,
        policy: OutputPolicy,
        detector: Detector,
        system_prompt: str = "",
        restore: RestoreMap | None = None,
    ) -> None:
        self._policy = policy
        self._detector = detector
        self._entities = (
            frozenset(policy.pii_entities) if policy.pii_action != "off" else frozenset()
        )
        self._deny = [re.compile(p) for p in policy.deny_patterns]
        self._leak = (
            LeakageMeter(system_prompt, policy.leakage_threshold) if policy.leakage else None
        )
        self._restorer = StreamRestorer(restore or RestoreMap())
        self._sent_tail = ""
        self._pending = ""
        self._blocked: str | None = None
        self.counts: Counter[str] = Counter()

    @property
    def blocked_reason(self) -> str | None:
        return self._blocked

    def feed(self, delta: str) -> StreamChunk:
        if self._blocked:
            return StreamChunk("", True, self._blocked)
        self._pending += delta
        if self._leak is not None:
            self._leak.feed(delta)
        return self._step(final=False)

    def whole(self, text: str) -> StreamChunk:
        """A complete answer at once: the same result as ``feed(text)`` then ``finish()``,
        with one analysis instead of two."""
        if self._blocked:
            return StreamChunk("", True, self._blocked)
        self._pending += text
        if self._leak is not None:
            self._leak.feed(text)
        return self.finish()

    def finish(self) -> StreamChunk:
        if self._blocked:
            return StreamChunk("", True, self._blocked)
        chunk = self._step(final=True)
        if chunk.blocked:
            return chunk
        return StreamChunk(chunk.text + self._restorer.finish())

    def _step(self, final: bool) -> StreamChunk:
        text = self._sent_tail + self._pending
        offset = len(self._sent_tail)
        reason = self._deny_reason(text)
        spans = [
            s
            for s in self._detector.detect(text)
            if s.entity_type in self._entities and s.end > offset
        ]
        if reason is None and spans and self._policy.pii_action == "block":
            reason = f"output contains {spans[0].entity_type}"
        if reason is None and self._leak is not None and self._leak.leaked():
            reason = "output reproduces the system prompt"
        if reason is not None:
            self._blocked = reason
            self._pending = ""
            return StreamChunk("", True, reason)
        # Emit up to `window` characters before the end; never cut through a span.
        cut = len(text) if final else max(offset, len(text) - self._policy.stream_window)
        for span in spans:
            if span.start < cut < span.end:
                cut = max(offset, span.start)
        pieces: list[str] = []
        cursor = offset
        for span in sorted(spans, key=lambda s: s.start):
            if span.end > cut:
                break
            pieces.append(text[cursor : max(cursor, span.start)])
            pieces.append(MASK)
            self.counts[span.entity_type] += 1
            cursor = max(cursor, span.end)
        pieces.append(text[cursor:cut])
        safe = "".join(pieces)
        self._pending = text[cut:]
        self._sent_tail = (self._sent_tail + safe)[-_CONTEXT:]
        return StreamChunk(self._restorer.feed(safe))

    def _deny_reason(self, text: str) -> str | None:
        for index, pattern in enumerate(self._deny):
            if pattern.search(text):
                return f"output matches deny pattern {index}"
        return None
