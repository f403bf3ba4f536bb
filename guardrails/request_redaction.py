"""Redacting every text of a chat request with one per-request session."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from guardrails.chat_request import iter_texts, rewrite_texts
from guardrails.detector import Detector
from guardrails.ner_tier import has_japanese
from guardrails.policy import EntityAction, PiiPolicy
from guardrails.redaction import RedactionSession
from guardrails.restore import RestoreMap
from guardrails.spans import Span, resolve_overlaps

__all__ = ["RedactedRequest", "ner_texts", "redact_request"]


@dataclass(frozen=True)
class RedactedRequest:
    request: dict[str, Any]
    counts: Mapping[str, int] = field(default_factory=dict)  # entity type -> replacements
    restore: RestoreMap = field(default_factory=RestoreMap)


def ner_texts(request: Mapping[str, Any], policy: PiiPolicy) -> list[str]:
    """The texts of a request the NER tier should see (distinct, Japanese only)."""
    if not (policy.enabled and policy.ner):
        return []
    texts = dict.fromkeys(text for _, text in iter_texts(request) if has_japanese(text))
    return list(texts)


def redact_request(
    request: Mapping[str, Any],
    policy: PiiPolicy,
    detector: Detector,
    ner_spans: Mapping[str, Sequence[Span]] | None = None,
) -> RedactedRequest:
    """`ner_spans`: the NER tier's spans per text (see `ner_texts`), if it ran."""
    if not policy.enabled:
        return RedactedRequest(dict(request))
    session = RedactionSession()

    def action_for(entity_type: str) -> EntityAction:
        return policy.action_for(entity_type)

    def rewrite(text: str, _site: object) -> str:
        found = [*detector.detect(text), *(ner_spans or {}).get(text, ())]
        spans = resolve_overlaps(
            s for s in found if action_for(s.entity_type) is not EntityAction.OFF
        )
        return session.redact(text, spans, action_for) if spans else text

    redacted = rewrite_texts(request, rewrite)
    return RedactedRequest(redacted, dict(session.counts), session.restore_map())
