"""Validate payloads against OpenAI's published OpenAPI spec (../shared/openai/openapi.yaml).

A gzipped copy of the same file (openai/openai-openapi, MIT, see tests/data/openai/LICENSE)
ships in tests/data/openai/ so a checkout without ../shared still validates.
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_CANDIDATES = (
    Path(__file__).resolve().parents[2] / "shared" / "openai" / "openapi.yaml",
    Path(__file__).resolve().parents[1] / "shared" / "openai" / "openapi.yaml",
    Path(__file__).resolve().parent / "data" / "openai" / "openapi.yaml.gz",
)


def spec_path() -> Path:
    for path in SPEC_CANDIDATES:
        if path.exists():
            return path
    raise FileNotFoundError(f"OpenAI spec not found at any of {SPEC_CANDIDATES}")


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
    path = spec_path()
    text = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    spec = yaml.load(text, Loader=yaml.CSafeLoader)
    document = _nullable(spec)
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    return Registry().with_resource("openai.yaml", resource), document


def validate(component: str, payload: Any) -> None:
    """Raise ValidationError unless `payload` matches `#/components/schemas/<component>`."""
    registry, _ = _registry()
    schema = {"$ref": f"openai.yaml#/components/schemas/{component}"}
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    validator.validate(payload)
