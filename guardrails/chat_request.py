"""Where the text of an OpenAI chat (or completions) request lives, and rewriting it.

Text sites: every message's content (a string, or `{"type": "text", "text": ...}` parts),
tool-call arguments of assistant messages (a JSON string: its string leaves are rewritten
so the result stays valid JSON), tool results (role "tool"), and a completions `prompt`.
The caller's request is never mutated: rewriting returns a deep copy.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["TextSite", "iter_texts", "rewrite_texts", "system_prompt"]

Kind = Literal["content", "tool_arguments", "tool_result", "prompt"]


@dataclass(frozen=True, slots=True)
class TextSite:
    role: str
    kind: Kind


Rewrite = Callable[[str, TextSite], str]


def iter_texts(request: Mapping[str, Any]) -> Iterator[tuple[TextSite, str]]:
    """Every text of the request with where it is (reading only)."""
    found: list[tuple[TextSite, str]] = []

    def collect(text: str, site: TextSite) -> str:
        found.append((site, text))
        return text

    _walk(request, collect, copy_request=False)
    return iter(found)


def rewrite_texts(request: Mapping[str, Any], rewrite: Rewrite) -> dict[str, Any]:
    """A deep copy of the request with every text replaced by `rewrite(text, site)`."""
    return _walk(request, rewrite, copy_request=True)


def system_prompt(request: Mapping[str, Any]) -> str:
    parts = [
        text
        for site, text in iter_texts(request)
        if site.kind == "content" and site.role in {"system", "developer"}
    ]
    return "\n".join(parts)


def _walk(request: Mapping[str, Any], rewrite: Rewrite, copy_request: bool) -> dict[str, Any]:
    out: dict[str, Any] = copy.deepcopy(dict(request)) if copy_request else dict(request)
    messages = out.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                _message(message, rewrite)
    prompt = out.get("prompt")
    if isinstance(prompt, str):
        out["prompt"] = rewrite(prompt, TextSite("user", "prompt"))
    elif isinstance(prompt, list):
        out["prompt"] = [
            rewrite(p, TextSite("user", "prompt")) if isinstance(p, str) else p for p in prompt
        ]
    return out


def _message(message: dict[str, Any], rewrite: Rewrite) -> None:
    role = str(message.get("role", ""))
    site = TextSite(role, "tool_result" if role in {"tool", "function"} else "content")
    content = message.get("content")
    if isinstance(content, str):
        message["content"] = rewrite(content, site)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                part["text"] = rewrite(part["text"], site)
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                function["arguments"] = rewrite_arguments(function["arguments"], role, rewrite)
    legacy = message.get("function_call")
    if isinstance(legacy, dict) and isinstance(legacy.get("arguments"), str):
        legacy["arguments"] = rewrite_arguments(legacy["arguments"], role, rewrite)


def rewrite_arguments(arguments: str, role: str, rewrite: Rewrite) -> str:
    """Rewrite a JSON arguments string as text (keys give context: "password": "..."),
    keeping it valid JSON; when a rewrite would break it, rewrite its string leaves."""
    site = TextSite(role, "tool_arguments")
    whole = rewrite(arguments, site)
    if whole == arguments:
        return arguments
    try:
        json.loads(arguments)
    except ValueError:
        return whole  # it was not JSON to begin with
    try:
        json.loads(whole)
    except ValueError:
        return json.dumps(_leaves(json.loads(arguments), site, rewrite), ensure_ascii=False)
    return whole


def _leaves(value: Any, site: TextSite, rewrite: Rewrite) -> Any:
    if isinstance(value, str):
        return rewrite(value, site)
    if isinstance(value, list):
        return [_leaves(v, site, rewrite) for v in value]
    if isinstance(value, dict):
        return {k: _leaves(v, site, rewrite) for k, v in value.items()}
    return value
