"""What makes two requests the same request: normalisation, canonical JSON, sha256.

Everything that can change the answer is part of the key (model, messages or prompt,
sampling parameters, tools and tool_choice, response_format, logprobs, n, seed, vendor
extensions the gateway passes through). Dropped, because they never change the answer:
transport (``stream``, ``stream_options``) and bookkeeping (``user``, ``metadata``,
``store``, ``service_tier``, ``prompt_cache_key``, ``safety_identifier``). JSON
spellings of the same value are folded: key order, ``null`` fields, ``1.0`` vs ``1``,
``n: 1`` vs no ``n``. Anything else that differs gives another key: a spurious miss
costs a model call, a spurious hit serves a wrong answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Literal

import orjson

__all__ = [
    "IGNORED_FIELDS",
    "Endpoint",
    "canonical_json",
    "digest",
    "is_deterministic",
    "normalise",
    "request_key",
]

Endpoint = Literal["chat", "completions"]

IGNORED_FIELDS = frozenset(
    {
        "stream",
        "stream_options",
        "user",
        "metadata",
        "store",
        "service_tier",
        "prompt_cache_key",
        "safety_identifier",
    }
)

_KEY_VERSION = 1  # bump when normalisation changes, so old entries are never misread


_INT64 = 2**63


def _fold(value: Any) -> Any:
    # 1.0 and 1 mean the same; beyond 64 bits an integral float stays a float (JSON allows
    # it, and orjson encodes only 64-bit integers).
    if isinstance(value, float) and value.is_integer() and -_INT64 <= value < _INT64:
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _fold(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_fold(v) for v in value]
    return value


def normalise(request: Mapping[str, Any]) -> dict[str, Any]:
    """The answer-relevant part of an OpenAI request, in one spelling."""
    out: dict[str, Any] = _fold({k: v for k, v in request.items() if k not in IGNORED_FIELDS})
    if out.get("n") == 1:
        del out["n"]
    return out


def canonical_json(value: Any) -> bytes:
    """Sorted keys at every level, no whitespace: equal values give equal bytes."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()


def request_key(endpoint: Endpoint, request: Mapping[str, Any], scope: str | None) -> str:
    """sha256 over the endpoint, the scope (None: shared by all teams) and the request."""
    return digest(
        {"v": _KEY_VERSION, "endpoint": endpoint, "scope": scope, "request": normalise(request)}
    )


def is_deterministic(request: Mapping[str, Any], any_temperature: bool = False) -> bool:
    """Whether a cached answer is one the caller could have got from the model.

    Temperature 0 is greedy decoding; a ``seed`` asks for a reproducible sample, and the
    seed is part of the key, so replaying the answer produced for it is what the caller
    asked for. ``n`` > 1 is fine too: ``n`` is in the key. Without either, the request
    samples (OpenAI's default temperature is 1) and a replay would pin one sample, unless
    the policy opts in with ``any_temperature``.
    """
    if any_temperature:
        return True
    temperature = request.get("temperature")
    if temperature is not None and float(temperature) == 0.0:
        return True
    return request.get("seed") is not None
