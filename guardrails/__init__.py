"""Guardrails: PII and secret redaction, prompt-injection detection, output filters and
tool-call control, as a pure-Python library (no Ray imports; never imports `deployments`).

The checks arrive with the guardrails issue; the gateway calls them between routing and the
backend call (input) and on every response and stream chunk (output).
"""
