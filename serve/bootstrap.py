"""Builds a `Gateway` from the platform config inside an ingress replica."""

from __future__ import annotations

from collections.abc import Mapping

from models.engine import Engine
from models.engines.openai_compatible import OpenAICompatibleEngine
from serve.auth.authenticator import Authenticator
from serve.auth.jwt_verifier import JWTVerifier
from serve.config import ModelConfig, OpenAICompatibleBackend, PlatformConfig
from serve.errors import ConfigError
from serve.gateway import Gateway
from serve.keystore import KeyStore
from serve.settings import expand_database_url, resolve_optional, resolve_secret
from serve.state import create_state_store


def in_process_engine(model: ModelConfig) -> Engine:
    backend = model.backend
    if isinstance(backend, OpenAICompatibleBackend):
        return OpenAICompatibleEngine(
            public_name=model.name,
            base_url=backend.base_url,
            upstream_model=backend.model,
            api_key=resolve_optional(backend.api_key),
            timeout_s=backend.timeout_s,
            max_connections=backend.max_connections,
        )
    raise ConfigError(f"model {model.name!r}: backend {backend.kind!r} runs in its own deployment")


async def build_gateway(config: PlatformConfig, remote: Mapping[str, Engine]) -> Gateway:
    """`remote` maps model names to engines living in their own deployments."""
    url = resolve_optional(config.database.url)
    assert url is not None
    keys = KeyStore(expand_database_url(url))
    await keys.init(config.teams, [(k, resolve_secret(k.key)) for k in config.keys])
    engines: dict[str, Engine] = {}
    for model in config.models:
        if model.in_process:
            engines[model.name] = in_process_engine(model)
        elif model.name in remote:
            engines[model.name] = remote[model.name]
        else:
            raise ConfigError(f"model {model.name!r} has no deployment")
    jwt = JWTVerifier(config.auth.jwt_issuers) if config.auth.jwt_issuers else None
    return Gateway(
        config=config,
        authenticator=Authenticator(config, keys, jwt),
        keys=keys,
        state=create_state_store(config.state),
        engines=engines,
        admin_key=resolve_optional(config.auth.admin_key),
    )
