"""Tool-call control: team allowlist, declared names, JSON-Schema-valid arguments.

Outcomes per call: "ok", "denied" (not on the team's allowlist), "invalid" (not declared
by the request, arguments not JSON, or not valid against the declared parameters schema).
Reasons name the tool and the check, never argument values.
"""

from __future__ import annotations

import copy
import fnmatch
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from guardrails.policy import ToolPolicy

__all__ = [
    "REMOVED_NOTE",
    "ToolCallOutcome",
    "apply_tool_outcomes",
    "check_tool_calls",
    "declared_tools",
]

REMOVED_NOTE = "[A tool call was removed by policy.]"
Status = Literal["ok", "denied", "invalid"]


@dataclass(frozen=True)
class ToolCallOutcome:
    choice: int
    index: int
    name: str
    status: Status
    reason: str = ""


def declared_tools(request: Mapping[str, Any]) -> dict[str, Any]:
    """Tool name -> its parameters schema (None when it declares none)."""
    tools: dict[str, Any] = {}
    for tool in request.get("tools") or ():
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            tools[function["name"]] = function.get("parameters")
    for function in request.get("functions") or ():  # legacy
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            tools[function["name"]] = function.get("parameters")
    return tools


def _check_one(
    name: str, arguments: Any, declared: Mapping[str, Any], policy: ToolPolicy
) -> tuple[Status, str]:
    if not any(fnmatch.fnmatchcase(name, pattern) for pattern in policy.allow):
        return "denied", f"tool {name!r} is not allowed for this team"
    if name not in declared:
        return "invalid", f"tool {name!r} was not declared in the request"
    if not policy.validate_arguments:
        return "ok", ""
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) else None
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        return "invalid", f"arguments of {name!r} are not a JSON object"
    schema = declared[name]
    if schema is None:
        return "ok", ""
    try:
        error = next(iter(Draft202012Validator(schema).iter_errors(parsed)), None)
    except SchemaError:
        return "invalid", f"the declared schema of {name!r} is not a valid JSON Schema"
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return "invalid", f"arguments of {name!r} fail the schema at {where} ({error.validator})"
    return "ok", ""


def check_tool_calls(
    response: Mapping[str, Any], request: Mapping[str, Any], policy: ToolPolicy
) -> list[ToolCallOutcome]:
    declared = declared_tools(request)
    outcomes: list[ToolCallOutcome] = []
    for choice_index, choice in enumerate(response.get("choices") or ()):
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        for index, call in enumerate(message.get("tool_calls") or ()):
            function = call.get("function") if isinstance(call, dict) else None
            function = function if isinstance(function, dict) else {}
            name = str(function.get("name", ""))
            status, reason = _check_one(name, function.get("arguments"), declared, policy)
            outcomes.append(ToolCallOutcome(choice_index, index, name, status, reason))
    return outcomes


def apply_tool_outcomes(
    response: Mapping[str, Any], outcomes: Sequence[ToolCallOutcome]
) -> dict[str, Any]:
    """A copy of the response without the calls that are not ok ("remove" policy)."""
    bad = {(o.choice, o.index) for o in outcomes if o.status != "ok"}
    out: dict[str, Any] = copy.deepcopy(dict(response))
    if not bad:
        return out
    for choice_index, choice in enumerate(out.get("choices") or ()):
        message = choice.get("message")
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        if not calls:
            continue
        kept = [c for i, c in enumerate(calls) if (choice_index, i) not in bad]
        if len(kept) == len(calls):
            continue
        if kept:
            message["tool_calls"] = kept
        else:
            message.pop("tool_calls", None)
            message["content"] = (message.get("content") or "") + REMOVED_NOTE
            choice["finish_reason"] = "stop"
    return out
