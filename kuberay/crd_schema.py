"""Validate objects against a CRD's ``openAPIV3Schema`` the way the API server would.

Defaults are applied first (as the API server does); unknown fields are errors, as with
``kubectl``'s strict field validation (the server would otherwise prune them silently);
``nullable`` is honoured; the ``x-kubernetes-*`` extensions are ignored (CEL rules
included: they need a real API server).
"""

from __future__ import annotations

import copy
import gzip
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

__all__ = ["CrdSchema"]


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items() if k != "nullable"}
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


def _apply_defaults(schema: Mapping[str, Any], value: Any) -> None:
    if isinstance(value, dict):
        properties: Mapping[str, Any] = schema.get("properties") or {}
        for key, sub in properties.items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in properties:
                _apply_defaults(properties[key], item)
            elif isinstance(extra, Mapping):
                _apply_defaults(extra, item)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for item in value:
            _apply_defaults(schema["items"], item)


class CrdSchema:
    """One version of a CRD (a ``.yaml`` or ``.yaml.gz`` file)."""

    def __init__(self, path: str | Path, version: str = "v1") -> None:
        path = Path(path)
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        crd = yaml.load(data, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        spec = crd["spec"]
        self.group: str = spec["group"]
        self.kind: str = spec["names"]["kind"]
        self.plural: str = spec["names"]["plural"]
        self.version = version
        for entry in spec["versions"]:
            if entry["name"] == version:
                self.schema: dict[str, Any] = entry["schema"]["openAPIV3Schema"]
                break
        else:
            raise ValueError(f"{path}: no version {version}")
        self._validator = jsonschema.Draft7Validator(_strict(self.schema))

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    def defaulted(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``obj`` with the schema's defaults filled in."""
        out = copy.deepcopy(dict(obj))
        _apply_defaults(self.schema, out)
        return out

    def errors(self, obj: Mapping[str, Any]) -> list[str]:
        """``path: message`` for each problem of the defaulted object; empty when valid."""
        found = []
        if obj.get("apiVersion") != self.api_version or obj.get("kind") != self.kind:
            found.append(f"apiVersion/kind: expected {self.api_version} {self.kind}")
        for error in self._validator.iter_errors(self.defaulted(obj)):
            where = ".".join(str(p) for p in error.absolute_path) or "(root)"
            found.append(f"{where}: {error.message}")
        return sorted(found)
