"""Upper bounds on what a request can consume, before it runs.

Prompt tokens: every tokenizer raygate serves (byte-level BPE, SentencePiece with byte
fallback) spends at least one byte of UTF-8 per token, so the UTF-8 size of the text is an
upper bound on its token count (about 4x the usual English count; reservations are
reconciled with the real usage when the request ends). Output tokens: ``max_tokens``, or
the platform default, which the gateway then sends upstream so the bound holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["MESSAGE_OVERHEAD", "output_tokens", "prompt_tokens"]

MESSAGE_OVERHEAD = 8  # chat template tokens per message (role markers, separators)


def _text_bytes(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, list):
        return sum(_text_bytes(item) for item in value)
    if isinstance(value, Mapping):
        return sum(_text_bytes(v) for k, v in value.items() if k not in ("type", "role"))
    return 0


def prompt_tokens(request: Mapping[str, Any]) -> int:
    """An upper bound on the prompt tokens of a chat, completions or embeddings request."""
    if "messages" in request:
        messages = request["messages"]
        total = sum(_text_bytes(m) + MESSAGE_OVERHEAD for m in messages) + MESSAGE_OVERHEAD
        return total + _text_bytes(request.get("tools") or [])
    return _text_bytes(request.get("prompt", "")) + _text_bytes(request.get("input", ""))


def output_tokens(request: Mapping[str, Any], default: int) -> int:
    """The most output tokens the request may produce (n choices each)."""
    requested = request.get("max_completion_tokens") or request.get("max_tokens")
    per_choice = int(requested) if requested else default
    return per_choice * int(request.get("n") or 1)
