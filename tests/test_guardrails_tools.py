"""Tool-call control: allowlist, declared names, argument schemas, remove vs block."""

from __future__ import annotations

import json
from typing import Any

import pytest

from guardrails.policy import ToolPolicy
from guardrails.tool_calls import REMOVED_NOTE, apply_tool_outcomes, check_tool_calls

REQUEST = {
    "tools": [
        {"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"},
                                             "days": {"type": "integer", "minimum": 1}},
            "required": ["city"], "additionalProperties": False}}},
        {"type": "function", "function": {"name": "crm_lookup", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "no_schema"}},
    ]
}  # fmt: skip


def response(*calls: tuple[str, Any]) -> dict[str, Any]:
    tool_calls = [
        {"id": f"c{i}", "type": "function", "function": {
            "name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}}
        for i, (name, args) in enumerate(calls)
    ]  # fmt: skip
    message = {"role": "assistant", "content": None, "tool_calls": tool_calls}
    return {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": message}]}


@pytest.mark.parametrize(
    ("name", "arguments", "policy", "status"),
    [
        ("get_weather", {"city": "Tokyo"}, ToolPolicy(), "ok"),
        ("get_weather", {"city": "Tokyo", "days": 0}, ToolPolicy(), "invalid"),
        ("get_weather", {"town": "Tokyo"}, ToolPolicy(), "invalid"),
        ("get_weather", '{"city": "Tokyo"', ToolPolicy(), "invalid"),
        ("get_weather", "[1, 2]", ToolPolicy(), "invalid"),
        ("delete_everything", {}, ToolPolicy(), "invalid"),
        ("crm_lookup", {"id": 7}, ToolPolicy(allow=("get_*",)), "denied"),
        ("get_weather", {"city": "Osaka"}, ToolPolicy(allow=("get_*",)), "ok"),
        ("no_schema", {"anything": True}, ToolPolicy(), "ok"),
        ("get_weather", {"days": "x"}, ToolPolicy(validate_arguments=False), "ok"),
    ],
)
def test_outcome(name: str, arguments: Any, policy: ToolPolicy, status: str) -> None:
    (outcome,) = check_tool_calls(response((name, arguments)), REQUEST, policy)
    assert outcome.status == status
    assert "Tokyo" not in outcome.reason and "Osaka" not in outcome.reason


def test_remove_keeps_good_calls() -> None:
    resp = response(("get_weather", {"city": "Tokyo"}), ("drop_table", {}))
    outcomes = check_tool_calls(resp, REQUEST, ToolPolicy())
    out = apply_tool_outcomes(resp, outcomes)
    calls = out["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather"]
    assert out["choices"][0]["finish_reason"] == "tool_calls"
    assert len(resp["choices"][0]["message"]["tool_calls"]) == 2  # input untouched


def test_remove_all_turns_into_a_stop_with_a_note() -> None:
    resp = response(("drop_table", {}))
    out = apply_tool_outcomes(resp, check_tool_calls(resp, REQUEST, ToolPolicy()))
    choice = out["choices"][0]
    assert "tool_calls" not in choice["message"]
    assert choice["finish_reason"] == "stop" and choice["message"]["content"] == REMOVED_NOTE
