"""Validate payloads against OpenAI's published OpenAPI spec (../shared/openai/openapi.yaml)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_CANDIDATES = (
    Path(__file__).resolve().parents[2] / "shared" / "openai" / "openapi.yaml",
    Path(__file__).resolve().parents[1] / "shared" / "openai" / "openapi.yaml",
)


def spec_path() -> Path:
    for path in SPEC_CANDIDATES:
        if path.exists():
            return path
    raise FileNotFoundError("OpenAI spec not found at ../shared/openai/openapi.yaml")


def _nullable(node: Any) -> Any:
    """Some fields still say `nullable: true` (OpenAPI 3.0 style): turn that into JSON Schema."""
    if isinstance(node, list):
        return [_nullable(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


@functools.cache
def _registry() -> tuple[Registry, dict[str, Any]]:
    with spec_path().open() as handle:
        spec = yaml.load(handle, Loader=yaml.CSafeLoader)
    document = _nullable(spec)
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    return Registry().with_resource("openai.yaml", resource), document


def validate(component: str, payload: Any) -> None:
    """Raise ValidationError unless `payload` matches `#/components/schemas/<component>`."""
    registry, _ = _registry()
    schema = {"$ref": f"openai.yaml#/components/schemas/{component}"}
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    validator.validate(payload)
