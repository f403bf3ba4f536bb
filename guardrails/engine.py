"""The one entry point the gateway calls: `Guardrails`, built once, used per request."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

from guardrails.chat_request import system_prompt
from guardrails.detector import Detector
from guardrails.injection import InjectionDetector
from guardrails.pattern_tier import PatternDetector
from guardrails.policy import GuardrailsPolicy
from guardrails.request_redaction import ner_texts, redact_request
from guardrails.restore import RestoreMap
from guardrails.spans import Span
from guardrails.stream_filter import StreamFilter
from guardrails.tool_calls import ToolCallOutcome, apply_tool_outcomes, check_tool_calls
from guardrails.verdicts import Actions, RequestVerdict, ResponseVerdict

__all__ = ["Guardrails"]


class Guardrails:
    """Stateless between requests and thread-safe to share.

    `ner`: an in-process NER tier (e.g. `GinzaDetector()`), or None when the gateway runs
    the NER tier elsewhere and passes its results as `ner_spans` (see `ner_texts`).
    """

    def __init__(
        self,
        detector: Detector | None = None,
        ner: Detector | None = None,
        injection: InjectionDetector | None = None,
    ) -> None:
        self.detector = detector or PatternDetector()
        self.ner = ner
        self.injection = injection or InjectionDetector()

    def ner_texts(self, request: Mapping[str, Any], policy: GuardrailsPolicy) -> list[str]:
        """Texts to send to a remote NER tier; pass its results back as `ner_spans`."""
        return ner_texts(request, policy.pii)

    def check_request(
        self,
        request: Mapping[str, Any],
        policy: GuardrailsPolicy,
        ner_spans: Mapping[str, Sequence[Span]] | None = None,
    ) -> RequestVerdict:
        injection = self.injection.check_request(request, policy.injection)
        if ner_spans is None and self.ner is not None:
            texts = ner_texts(request, policy.pii)
            ner_spans = dict(zip(texts, self.ner.detect_batch(texts), strict=True)) if texts else {}
        redacted = redact_request(request, policy.pii, self.detector, ner_spans)
        flags = tuple(f"injection:{s}" for s in injection.signals)
        block = None
        blocks: tuple[str, ...] = ()
        if injection.action == "block":
            block = "prompt injection detected (" + ", ".join(injection.signals) + ")"
            blocks = ("injection",)
        return RequestVerdict(
            request=redacted.request,
            actions=Actions(redacted=redacted.counts, flags=flags, blocks=blocks),
            injection=injection,
            restore=redacted.restore,
            system_prompt=system_prompt(redacted.request),
            block_reason=block,
        )

    def output_filter(self, verdict: RequestVerdict, policy: GuardrailsPolicy) -> StreamFilter:
        """A filter for one streamed choice: feed it content deltas, then `finish()`."""
        return StreamFilter(policy.output, self.detector, verdict.system_prompt, verdict.restore)

    def check_tool_calls(
        self, response: Mapping[str, Any], request: Mapping[str, Any], policy: GuardrailsPolicy
    ) -> list[ToolCallOutcome]:
        return check_tool_calls(response, request, policy.tools)

    def check_response(
        self, response: Mapping[str, Any], verdict: RequestVerdict, policy: GuardrailsPolicy
    ) -> ResponseVerdict:
        """A whole (non-streamed) chat completion: content filters, tool calls, restore."""
        out: dict[str, Any] = copy.deepcopy(dict(response))
        actions = Actions()
        for choice in out.get("choices") or ():
            message = choice.get("message") if isinstance(choice, dict) else None
            if not isinstance(message, dict) or not isinstance(message.get("content"), str):
                continue
            stream = self.output_filter(verdict, policy)
            checked = stream.whole(message["content"])
            if checked.blocked:
                reason = stream.blocked_reason or "output blocked"
                return ResponseVerdict(None, Actions(blocks=(_block_kind(reason),)), (), reason)
            message["content"] = checked.text
            actions = actions.merged(Actions(masked=dict(stream.counts)))
        outcomes = tuple(check_tool_calls(out, verdict.request, policy.tools))
        bad = [o for o in outcomes if o.status != "ok"]
        if bad:
            if policy.tools.invalid_action == "block":
                reason = "; ".join(o.reason for o in bad)
                return ResponseVerdict(
                    None, actions.merged(Actions(blocks=("tool_call",))), outcomes, reason
                )
            out = apply_tool_outcomes(out, outcomes)
            actions = actions.merged(Actions(flags=tuple(f"tool_call:{o.status}" for o in bad)))
        _restore_tool_arguments(out, verdict)
        return ResponseVerdict(out, actions, outcomes)


def _block_kind(reason: str) -> str:
    if "system prompt" in reason:
        return "output_leakage"
    if "deny pattern" in reason:
        return "output_deny_pattern"
    return "output_pii"


def _restore_tool_arguments(response: dict[str, Any], verdict: RequestVerdict) -> None:
    if not verdict.restore:
        return
    # Inside a JSON string: restore JSON-escaped values so the arguments stay valid JSON.
    escaped = RestoreMap({k: json.dumps(v)[1:-1] for k, v in verdict.restore.values.items()})
    for choice in response.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        for call in (message or {}).get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                function["arguments"] = escaped.restore(function["arguments"])
