"""OpenAI embeddings <-> Vertex text-embedding ``:predict``, as pure functions (no I/O).

Vertex takes ``{"instances": [{"content", "task_type"?}], "parameters":
{"outputDimensionality"?}}`` and answers ``predictions[i].embeddings.{values,
statistics.token_count}``. ``task_type`` (RETRIEVAL_QUERY, RETRIEVAL_DOCUMENT, ...) is not
an OpenAI field; a caller may send it as an extra field and it is passed on.
"""

from __future__ import annotations

import base64
import struct
from typing import Any, cast

from models.engine import Request
from serve.errors import InvalidRequest, UpstreamError
from serve.openai_types import Embedding, EmbeddingList

# Instances per :predict call. gemini-embedding-* takes one input per request; the
# text-embedding/multilingual models take up to 250.
MAX_INSTANCES = 250


def max_instances(model: str) -> int:
    return 1 if model.startswith("gemini-embedding") else MAX_INSTANCES


def embedding_instances(request: Request) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The instances (one per input, in order) and the shared parameters."""
    inputs = request["input"]
    if isinstance(inputs, str):
        inputs = [inputs]
    if not inputs:
        raise InvalidRequest("input must not be empty.", param="input")
    if not all(isinstance(text, str) for text in inputs):
        raise InvalidRequest(
            "This model takes text input, not token arrays.", param="input", code="invalid_value"
        )
    task_type = request.get("task_type")
    extra = {"task_type": task_type} if isinstance(task_type, str) and task_type else {}
    instances = [{"content": text, **extra} for text in inputs]
    parameters: dict[str, Any] = {}
    if request.get("dimensions") is not None:
        parameters["outputDimensionality"] = request["dimensions"]
    return instances, parameters


def predict_body(instances: list[dict[str, Any]], parameters: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"instances": instances}
    if parameters:
        body["parameters"] = parameters
    return body


def embedding_response(
    predictions: list[dict[str, Any]], public_name: str, encoding_format: str = "float"
) -> EmbeddingList:
    """Predictions (all batches, in input order) as an OpenAI embedding list."""
    data: list[Embedding] = []
    tokens = 0
    for index, prediction in enumerate(predictions):
        try:
            embeddings = prediction["embeddings"]
            values = [float(v) for v in embeddings["values"]]
            tokens += int((embeddings.get("statistics") or {}).get("token_count", 0))
        except (KeyError, TypeError, ValueError):
            raise UpstreamError("The model backend answered with an unexpected body.") from None
        vector: list[float] | str = values if encoding_format != "base64" else to_base64(values)
        data.append({"object": "embedding", "index": index, "embedding": vector})
    return cast(
        EmbeddingList,
        {
            "object": "list",
            "data": data,
            "model": public_name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        },
    )


def to_base64(values: list[float]) -> str:
    """As OpenAI's ``encoding_format: base64``: float32 little-endian, base64."""
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
