"""Embeddings engine: all-MiniLM-L6-v2 in numpy (`models.engines.minilm`)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from models.engine import Request
from models.engines.minilm import MiniLMEmbedder
from models.engines.unsupported import NoGeneration
from serve.errors import InvalidRequest
from serve.openai_types import Embedding, EmbeddingList


def _texts(raw: Any, max_batch: int) -> list[str]:
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidRequest(
            "'input' must be a string or a non-empty list of strings for this model.",
            param="input",
            code="invalid_value",
        )
    if len(texts) > max_batch:
        raise InvalidRequest(
            f"'input' has {len(texts)} items; this model accepts at most {max_batch}.",
            param="input",
            code="invalid_value",
        )
    return texts


class MiniLMEngine(NoGeneration):
    def __init__(self, public_name: str, max_batch: int = 64) -> None:
        self._name = public_name
        self._max_batch = max_batch
        self._embedder = MiniLMEmbedder()

    async def embeddings(self, request: Request) -> EmbeddingList:
        texts = _texts(request.get("input"), self._max_batch)
        dimensions = request.get("dimensions")
        if dimensions is not None and dimensions != self._embedder.dimensions:
            raise InvalidRequest(
                f"This model produces {self._embedder.dimensions}-dimensional embeddings.",
                param="dimensions",
                code="invalid_value",
            )
        vectors, tokens = await asyncio.to_thread(self._embedder.embed, texts)
        as_base64 = request.get("encoding_format") == "base64"
        data: list[Embedding] = [
            {
                "object": "embedding",
                "index": i,
                "embedding": base64.b64encode(vec.astype("<f4").tobytes()).decode()
                if as_base64
                else vec.tolist(),
            }
            for i, vec in enumerate(vectors)
        ]
        total = sum(tokens)
        return {
            "object": "list",
            "data": data,
            "model": self._name,
            "usage": {"prompt_tokens": total, "total_tokens": total},
        }

    async def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None
