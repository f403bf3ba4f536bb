"""Builds a `Gateway` from the platform config inside an ingress replica."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from models.engine import Engine
from models.engines.factory import create_engine
from serve.admission import Admission, TeamLimits
from serve.admission.alerts import BudgetAlerts
from serve.admission.memory_store import MemoryAdmissionStore
from serve.admission.store import AdmissionStore
from serve.auth import api_keys
from serve.auth.authenticator import Authenticator
from serve.auth.jwt_verifier import JWTVerifier
from serve.cache import ExactCache, ResponseCache, SemanticCache
from serve.config import BootstrapKeyConfig, PlatformConfig
from serve.errors import ConfigError
from serve.gateway import Gateway
from serve.keystore import KeyStore
from serve.record import RequestObserver
from serve.settings import expand_database_url, resolve_optional, resolve_secret
from serve.state import StateStore, create_state_store


async def build_gateway(
    config: PlatformConfig,
    remote: Mapping[str, Engine],
    observers: Sequence[RequestObserver] = (),
) -> Gateway:
    """`remote` maps model names to engines living in their own deployments."""
    url = resolve_optional(config.database.url)
    assert url is not None
    keys = KeyStore(expand_database_url(url))
    bootstrap = [(k, resolve_secret(k.key)) for k in config.keys]
    await keys.init(config.teams, bootstrap)
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
        admission=build_admission(config, state, bootstrap),
        observers=observers,
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


def build_admission(
    config: PlatformConfig, state: StateStore, bootstrap: Sequence[tuple[BootstrapKeyConfig, str]]
) -> Admission:
    """Limits and budgets in the shared state store (Redis scripts, or in process)."""
    from serve.state.redis_store import RedisStateStore

    store: AdmissionStore
    if isinstance(state, RedisStateStore):
        from serve.admission.redis_store import RedisAdmissionStore

        store = RedisAdmissionStore(state.client, prefix=state.prefix)
    else:
        store = MemoryAdmissionStore()
    teams = {
        t.name: TeamLimits(t.limits, t.key_limits, t.budget, dict(t.projects)) for t in config.teams
    }
    key_limits = {
        api_keys.key_id_of(secret): key.limits
        for key, secret in bootstrap
        if key.limits is not None
    }
    policy = config.admission
    url = policy.alerts.webhook_url
    webhook = resolve_optional(url) if url is not None and url.startswith("env:") else url
    return Admission(
        policy,
        teams,
        key_limits,
        store,
        shared=isinstance(state, RedisStateStore),
        alerts=BudgetAlerts(state, policy.alerts, webhook),
    )
