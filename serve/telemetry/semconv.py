"""The OpenTelemetry GenAI vocabulary raygate speaks, and raygate's own attribute names.

Names follow the GenAI semantic conventions registry (open-telemetry/semantic-conventions-
genai, model/gen-ai/registry.yaml). `gen_ai.provider.name` is an open enum: the registry
lists ``openai``, ``gcp.vertex_ai``, ``aws.bedrock`` and others, and no value for models a
company serves itself, so those get ``raygate.self_hosted`` (the engine is in
``raygate.backend.kind``).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "GEN_AI",
    "RAYGATE",
    "SELF_HOSTED",
    "operation_name",
    "provider_name",
]

SELF_HOSTED: Final = "raygate.self_hosted"


class GEN_AI:  # a namespace of constants
    OPERATION_NAME: Final = "gen_ai.operation.name"
    PROVIDER_NAME: Final = "gen_ai.provider.name"
    REQUEST_MODEL: Final = "gen_ai.request.model"
    REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
    REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
    REQUEST_TOP_P: Final = "gen_ai.request.top_p"
    REQUEST_STREAM: Final = "gen_ai.request.stream"
    RESPONSE_MODEL: Final = "gen_ai.response.model"
    RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
    RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
    SERVER_TIME_TO_FIRST_TOKEN: Final = "gen_ai.server.time_to_first_token"
    USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
    USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
    USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
    INPUT_MESSAGES: Final = "gen_ai.input.messages"
    OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
    FIRST_CHUNK_EVENT: Final = "gen_ai.first_chunk"
    ERROR_TYPE: Final = "error.type"
    HTTP_STATUS: Final = "http.response.status_code"


class RAYGATE:
    REQUEST_ID: Final = "raygate.request_id"
    ENDPOINT: Final = "raygate.endpoint"
    OUTCOME: Final = "raygate.outcome"
    TEAM: Final = "raygate.team"
    KEY_ID: Final = "raygate.key_id"
    PROJECT: Final = "raygate.project"
    CACHE: Final = "raygate.cache"
    FALLBACK_FROM: Final = "raygate.fallback_from"
    COST_USD: Final = "raygate.cost_usd"
    GUARDRAILS_TOTAL: Final = "raygate.guardrails.total"
    GUARDRAILS_PREFIX: Final = "raygate.guardrails."  # + "<action>.<entity>": count
    BACKEND_KIND: Final = "raygate.backend.kind"
    ATTEMPT: Final = "raygate.attempt"
    STREAM_CHUNKS: Final = "raygate.stream.chunks"


# raygate endpoint -> gen_ai.operation.name
_OPERATIONS: Final = {"chat": "chat", "completions": "text_completion", "embeddings": "embeddings"}

# raygate backend kind -> gen_ai.provider.name
_PROVIDERS: Final = {
    "vertex": "gcp.vertex_ai",
    "bedrock": "aws.bedrock",
    "openai_compatible": "openai",
    "llama_cpp": SELF_HOSTED,
    "minilm": SELF_HOSTED,
    "vllm": SELF_HOSTED,
}


def operation_name(endpoint: str) -> str:
    return _OPERATIONS.get(endpoint, endpoint)


def provider_name(backend_kind: str | None) -> str | None:
    """The convention's provider name for a backend kind (unknown kinds pass through)."""
    if backend_kind is None:
        return None
    return _PROVIDERS.get(backend_kind, backend_kind)
