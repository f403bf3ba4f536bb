"""The text of requests and answers, for the audit record and the stream meter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["AUDIT_TEXT_MAX", "answer_text", "is_piece", "piece_text", "prompt_text"]


AUDIT_TEXT_MAX = 65_536  # characters of a streamed answer kept for the audit record


def piece_text(choice: Mapping[str, Any]) -> str:
    delta = choice.get("delta")
    if isinstance(delta, Mapping):
        return str(delta.get("content") or "")
    return str(choice.get("text") or "")


def is_piece(choice: Mapping[str, Any]) -> bool:
    delta = choice.get("delta")
    if isinstance(delta, Mapping):
        return bool(delta.get("content") or delta.get("tool_calls"))
    return bool(choice.get("text"))


def prompt_text(body: Mapping[str, Any]) -> str:
    """The request's text for the audit log: one ``role: text`` line per message."""
    if "messages" not in body:
        prompt = body.get("prompt")
        return prompt if isinstance(prompt, str) else "\n".join(map(str, prompt or ()))
    lines = []
    for message in body["messages"]:
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content if isinstance(p, Mapping))
        lines.append(f"{message.get('role')}: {content or ''}")
    return "\n".join(lines)


def answer_text(result: Mapping[str, Any]) -> str:
    parts = []
    for choice in result.get("choices") or ():
        message = choice.get("message")
        if isinstance(message, Mapping):
            parts.append(str(message.get("content") or ""))
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                parts.append(f"[tool {function.get('name')}] {function.get('arguments')}")
        else:
            parts.append(str(choice.get("text") or ""))
    return "\n".join(parts)
