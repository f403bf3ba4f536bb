"""Builds the engine a self-hosted model deployment runs."""

from __future__ import annotations

from models.engine import Engine
from serve.config import LlamaCppBackend, MiniLMBackend, ModelConfig
from serve.errors import ConfigError


def create_local_engine(model: ModelConfig) -> Engine:
    backend = model.backend
    if isinstance(backend, LlamaCppBackend):
        from models.engines.llama_cpp import LlamaCppEngine

        return LlamaCppEngine(model.name, backend)
    if isinstance(backend, MiniLMBackend):
        from models.engines.minilm_engine import MiniLMEngine

        return MiniLMEngine(model.name, backend.max_batch)
    raise ConfigError(f"model {model.name!r}: backend {backend.kind!r} has no local engine")
