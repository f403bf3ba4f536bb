"""Builds the `Engine` for one configured model, wherever it runs.

The ingress calls it for remote backends placed in the ingress; a model deployment calls
it for everything else (local engines, and remote backends placed in a deployment).
Imports are lazy: a replica loads only the engine it serves.
"""

from __future__ import annotations

from models.engine import Engine
from serve.config import (
    BedrockBackend,
    LlamaCppBackend,
    MiniLMBackend,
    ModelConfig,
    OpenAICompatibleBackend,
    VertexBackend,
)
from serve.errors import ConfigError
from serve.settings import resolve_optional


def create_engine(model: ModelConfig) -> Engine:
    backend = model.backend
    if isinstance(backend, LlamaCppBackend):
        from models.engines.llama_cpp import LlamaCppEngine

        return LlamaCppEngine(model.name, backend)
    if isinstance(backend, MiniLMBackend):
        from models.engines.minilm_engine import MiniLMEngine

        return MiniLMEngine(model.name, backend.max_batch)
    if isinstance(backend, OpenAICompatibleBackend):
        from models.engines.openai_compatible import OpenAICompatibleEngine

        return OpenAICompatibleEngine(
            public_name=model.name,
            base_url=backend.base_url,
            upstream_model=backend.model,
            api_key=resolve_optional(backend.api_key),
            timeout_s=backend.timeout_s,
            max_connections=backend.max_connections,
        )
    if isinstance(backend, VertexBackend):
        from models.engines.vertex import VertexEngine

        return VertexEngine(model.name, backend)
    if isinstance(backend, BedrockBackend):
        from models.engines.bedrock import BedrockEngine

        return BedrockEngine(model.name, backend)
    raise ConfigError(f"model {model.name!r}: backend {backend.kind!r} has no engine")
