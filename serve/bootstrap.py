"""Builds a `Gateway` from the platform config inside an ingress replica."""

from __future__ import annotations

from collections.abc import Mapping

from models.engine import Engine
from models.engines.factory import create_engine
from serve.auth.authenticator import Authenticator
from serve.auth.jwt_verifier import JWTVerifier
from serve.cache import ExactCache, ResponseCache, SemanticCache
from serve.config import PlatformConfig
from serve.errors import ConfigError
from serve.gateway import Gateway
from serve.keystore import KeyStore
from serve.settings import expand_database_url, resolve_optional, resolve_secret
from serve.state import StateStore, create_state_store


async def build_gateway(config: PlatformConfig, remote: Mapping[str, Engine]) -> Gateway:
    """`remote` maps model names to engines living in their own deployments."""
    url = resolve_optional(config.database.url)
    assert url is not None
    keys = KeyStore(expand_database_url(url))
    await keys.init(config.teams, [(k, resolve_secret(k.key)) for k in config.keys])
    engines: dict[str, Engine] = {}
    for model in config.models:
        if model.in_process:
            engines[model.name] = create_engine(model)
        elif model.name in remote:
            engines[model.name] = remote[model.name]
        else:
            raise ConfigError(f"model {model.name!r} has no deployment")
    jwt = JWTVerifier(config.auth.jwt_issuers) if config.auth.jwt_issuers else None
    state = create_state_store(config.state)
    return Gateway(
        config=config,
        authenticator=Authenticator(config, keys, jwt),
        keys=keys,
        state=state,
        engines=engines,
        admin_key=resolve_optional(config.auth.admin_key),
        cache=build_cache(config, state, engines),
    )


def build_cache(
    config: PlatformConfig, state: StateStore, engines: Mapping[str, Engine]
) -> ResponseCache:
    """The exact cache in the shared state store; the semantic one embeds with a
    configured embeddings model (the config checked it exists and serves embeddings)."""
    policy = config.cache
    exact = ExactCache(state, policy.exact) if policy.exact.enabled else None
    semantic = None
    if policy.semantic.enabled and policy.semantic.embed_model is not None:
        embed = config.model(policy.semantic.embed_model)
        assert embed is not None
        semantic = SemanticCache(state, engines[embed.name], policy.semantic)
    return ResponseCache(exact, semantic)
