"""JSON Schema (as OpenAI tools carry it) -> Gemini's `Schema` (a subset of OpenAPI 3.0).

Gemini function declarations take ``parameters`` as an OpenAPI 3.0 *subset* and answer 400
INVALID_ARGUMENT for keys outside it: ``additionalProperties`` (which OpenAI strict mode
puts on every object), ``$schema``, ``$id``, ``$defs``/``$ref``, ``const``, ``examples`` and
JSON Schema's type arrays. So the translation keeps an allowlist of keys, inlines local
``$ref``s, turns ``const`` into a one-value ``enum`` and ``["T", "null"]`` into
``nullable``. What is dropped only loosens validation on Google's side: the caller's own
tool schema still describes the call, and the gateway's tool-call guard checks arguments.
"""

from __future__ import annotations

from typing import Any

from serve.errors import InvalidRequest

# Scalar keys Gemini's Schema accepts, copied as they are.
_SCALARS = frozenset(
    {
        "format",
        "title",
        "description",
        "nullable",
        "default",
        "example",
        "enum",
        "required",
        "propertyOrdering",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
    }
)
_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})
_MAX_DEPTH = 64


def to_gemini_schema(schema: dict[str, Any], *, param: str) -> dict[str, Any]:
    """Translate one JSON Schema; `param` names the request field in errors (400)."""
    definitions = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    return _convert(schema, definitions, param, frozenset(), 0)


def _convert(
    node: Any, definitions: dict[str, Any], param: str, refs: frozenset[str], depth: int
) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise InvalidRequest("A JSON schema must be an object.", param=param)
    if depth > _MAX_DEPTH:
        raise InvalidRequest("The JSON schema is nested too deeply.", param=param)
    if "$ref" in node:
        ref = node["$ref"]
        name = ref.rsplit("/", 1)[-1] if isinstance(ref, str) else ""
        if not isinstance(ref, str) or not ref.startswith("#/") or name not in definitions:
            raise InvalidRequest(f"Unresolvable $ref {str(ref)[:100]!r}.", param=param)
        if ref in refs:
            # Gemini's `parameters` cannot express recursion; say so instead of looping.
            raise InvalidRequest("Recursive schemas are not supported by this model.", param=param)
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        return _convert(
            {**definitions[name], **siblings}, definitions, param, refs | {ref}, depth + 1
        )

    out: dict[str, Any] = {key: node[key] for key in _SCALARS if key in node}
    if "const" in node and "enum" not in out:
        out["enum"] = [node["const"]]
    if "enum" in out and not all(isinstance(value, str) for value in out["enum"]):
        # Gemini enums are strings only; a numeric or mixed enum is dropped (a looser schema)
        # rather than stringified, which would make the model answer "1" for 1.
        del out["enum"]

    kind = node.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        if len(kinds) < len(kind):
            out["nullable"] = True
        if len(kinds) == 1:
            kind = kinds[0]
        elif kinds:
            variants = [{**node, "type": k} for k in kinds]
            out["anyOf"] = [_convert(v, definitions, param, refs, depth + 1) for v in variants]
            kind = None
        else:
            kind = "null"
    if kind is not None:
        if kind not in _TYPES:
            raise InvalidRequest(f"Unknown JSON schema type {str(kind)[:40]!r}.", param=param)
        out["type"] = kind.upper()

    if isinstance(node.get("properties"), dict):
        out["properties"] = {
            name: _convert(sub, definitions, param, refs, depth + 1)
            for name, sub in node["properties"].items()
        }
    if "items" in node and isinstance(node["items"], dict):
        out["items"] = _convert(node["items"], definitions, param, refs, depth + 1)
    branches = node.get("anyOf") or node.get("oneOf")
    if isinstance(branches, list) and "anyOf" not in out:
        non_null = [v for v in branches if not (isinstance(v, dict) and v.get("type") == "null")]
        if len(non_null) < len(branches):
            out["nullable"] = True
        converted = [_convert(v, definitions, param, refs, depth + 1) for v in non_null]
        if len(converted) == 1 and "type" not in out:
            out.update({k: v for k, v in converted[0].items() if k not in out})
        elif converted:
            out["anyOf"] = converted
    return out
