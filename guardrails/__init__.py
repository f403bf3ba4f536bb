"""Guardrails: PII and secret redaction, prompt-injection detection, output filters and
tool-call control, as a pure-Python library (no Ray imports; never imports `deployments`).

The gateway builds one `Guardrails` and calls `check_request` before the provider call,
`output_filter` (streams) or `check_response` (whole responses) after it. See
docs/guardrails.md.
"""

from guardrails.detector import Detector
from guardrails.engine import Guardrails
from guardrails.injection import InjectionDetector, InjectionVerdict
from guardrails.ner_tier import GinzaDetector
from guardrails.pattern_tier import PatternDetector
from guardrails.policy import (
    EntityAction,
    GuardrailsPolicy,
    InjectionPolicy,
    OutputPolicy,
    PiiPolicy,
    ToolPolicy,
)
from guardrails.restore import RestoreMap, StreamRestorer
from guardrails.spans import Span
from guardrails.stream_filter import StreamChunk, StreamFilter
from guardrails.tool_calls import ToolCallOutcome
from guardrails.verdicts import Actions, RequestVerdict, ResponseVerdict

__all__ = [
    "Actions",
    "Detector",
    "EntityAction",
    "GinzaDetector",
    "Guardrails",
    "GuardrailsPolicy",
    "InjectionDetector",
    "InjectionPolicy",
    "InjectionVerdict",
    "OutputPolicy",
    "PatternDetector",
    "PiiPolicy",
    "RequestVerdict",
    "ResponseVerdict",
    "RestoreMap",
    "Span",
    "StreamChunk",
    "StreamFilter",
    "StreamRestorer",
    "ToolCallOutcome",
    "ToolPolicy",
]
