"""Cache keys: which request differences change the key, and which requests are cacheable."""

from __future__ import annotations

from typing import Any

import pytest

from serve.cache.keys import is_deterministic, normalise, request_key

BASE: dict[str, Any] = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is our refund policy?"},
    ],
    "temperature": 0,
    "max_tokens": 64,
}


SYSTEM, USER = BASE["messages"]


def _with(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


def _reordered(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reordered(v) for v in value]
    return value


SAME = [
    ("keys reordered at every level", _reordered(BASE)),
    ("stream", _with(stream=True)),
    ("stream_options", _with(stream=True, stream_options={"include_usage": True})),
    ("user", _with(user="alice@example.com")),
    ("metadata", _with(metadata={"trace": "1"})),
    ("store", _with(store=True)),
    ("service_tier", _with(service_tier="default")),
    ("null field", _with(top_p=None)),
    ("integral float", _with(temperature=0.0, max_tokens=64.0)),
    ("n=1", _with(n=1)),
    ("nested null", {**BASE, "messages": [{**m, "name": None} for m in BASE["messages"]]}),
]

DIFFERENT = [
    ("model", _with(model="other")),
    ("user message", _with(messages=[SYSTEM, {**USER, "content": "Why?"}])),
    ("system prompt", _with(messages=[{**SYSTEM, "content": "Be long."}, USER])),
    ("message role", _with(messages=[{**SYSTEM, "role": "developer"}, USER])),
    ("whitespace", _with(messages=[SYSTEM, {**USER, "content": USER["content"] + " "}])),
    ("earlier turn", _with(messages=[SYSTEM, USER, {"role": "assistant", "content": "x"}, USER])),
    ("message name", _with(messages=[SYSTEM, {**USER, "name": "bob"}])),
    ("temperature", _with(temperature=0.5)),
    ("max_tokens", _with(max_tokens=65)),
    ("top_p", _with(top_p=0.9)),
    ("n", _with(n=2)),
    ("seed", _with(seed=7)),
    ("stop", _with(stop=["\n"])),
    ("presence_penalty", _with(presence_penalty=0.5)),
    ("logprobs", _with(logprobs=True)),
    ("response_format", _with(response_format={"type": "json_object"})),
    ("tools", _with(tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}])),
    ("tool_choice", _with(tool_choice="none")),
    ("vendor extension", _with(top_k=5)),
    ("max_completion_tokens", _with(max_completion_tokens=64)),
]


@pytest.mark.parametrize(("label", "other"), SAME, ids=[s[0] for s in SAME])
def test_same_key(label: str, other: dict[str, Any]) -> None:
    assert request_key("chat", other, "team-a") == request_key("chat", BASE, "team-a")


@pytest.mark.parametrize(("label", "other"), DIFFERENT, ids=[d[0] for d in DIFFERENT])
def test_different_key(label: str, other: dict[str, Any]) -> None:
    assert request_key("chat", other, "team-a") != request_key("chat", BASE, "team-a")


def test_scope_and_endpoint_are_part_of_the_key() -> None:
    keys = {
        request_key("chat", BASE, "team-a"),
        request_key("chat", BASE, "team-b"),
        request_key("chat", BASE, None),
        request_key("completions", BASE, "team-a"),
    }
    assert len(keys) == 4


def test_normalise_keeps_booleans_and_does_not_mutate() -> None:
    request = _with(logprobs=True, n=1, stream=True)
    out = normalise(request)
    assert out["logprobs"] is True and "n" not in out and "stream" not in out
    assert request["n"] == 1 and request["stream"] is True


@pytest.mark.parametrize(
    ("request_fields", "any_temperature", "expected"),
    [
        ({"temperature": 0}, False, True),
        ({"temperature": 0.0, "n": 3}, False, True),
        ({"temperature": 0.7, "seed": 42}, False, True),
        ({}, False, False),  # OpenAI's default temperature is 1
        ({"temperature": 0.2}, False, False),
        ({"top_p": 0}, False, False),
        ({"temperature": 1.0}, True, True),
        ({}, True, True),
    ],
)
def test_is_deterministic(
    request_fields: dict[str, Any], any_temperature: bool, expected: bool
) -> None:
    request = {"model": "m", "messages": [], **request_fields}
    assert is_deterministic(request, any_temperature) is expected
