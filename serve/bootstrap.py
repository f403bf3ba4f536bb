"""Builds a `Gateway` from the platform config inside an ingress replica."""

from __future__ import annotations

import functools
import hashlib
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from guardrails import Guardrails
from models.engine import Engine
from models.engines.factory import create_engine
from serve.admission import Admission, TeamLimits
from serve.admission.alerts import BudgetAlerts
from serve.admission.memory_store import MemoryAdmissionStore
from serve.admission.store import AdmissionStore
from serve.audit import AuditOutbox, AuditStore, PromptCipher, RetentionTask
from serve.auth import api_keys
from serve.auth.authenticator import Authenticator
from serve.auth.jwt_verifier import JWTVerifier
from serve.cache import ExactCache, ResponseCache, SemanticCache
from serve.config import BootstrapKeyConfig, PlatformConfig
from serve.errors import ConfigError
from serve.fairshare import FairSharePolicy, build_fair_share
from serve.gateway import Gateway
from serve.guard_stage import GuardStage, NerTier
from serve.keystore import KeyStore
from serve.record import RequestObserver
from serve.settings import expand_database_url, raygate_home, resolve_optional, resolve_secret
from serve.state import StateStore, create_state_store
from serve.telemetry import Telemetry, build_observers


async def build_gateway(
    config: PlatformConfig,
    remote: Mapping[str, Engine],
    observers: Sequence[RequestObserver] = (),
    *,
    ner: NerTier | None = None,
) -> Gateway:
    """`remote` maps model names to engines living in their own deployments; `observers`
    are added to the configured ones (audit outbox, metrics, Datadog)."""
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
    audit, outbox, retention = await build_audit(config, url)
    names = [m.name for m in config.models] + [a for m in config.models for a in m.aliases]
    names += [r.name for r in config.routes]
    observed = [
        outbox,
        *build_observers(config.telemetry, teams=[t.name for t in config.teams], models=names),
        *observers,
    ]
    guard = None
    if config.guardrails.enabled:
        guard = GuardStage({t.name: t.guardrails for t in config.teams}, shared_guardrails(), ner)
    return Gateway(
        config=config,
        authenticator=Authenticator(config, keys, jwt),
        keys=keys,
        state=state,
        engines=engines,
        admin_key=resolve_optional(config.auth.admin_key),
        cache=build_cache(config, state, engines),
        admission=build_admission(config, state, bootstrap),
        observers=observed,
        guard=guard,
        telemetry=Telemetry(config.telemetry),
        audit=audit,
        fair_share=build_fair_share(shared_models(config), state),
        closers=[retention.aclose],
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


async def build_audit(
    config: PlatformConfig, database_url: str
) -> tuple[AuditStore, AuditOutbox, RetentionTask]:
    """The audit store in the platform database, the outbox spooling to local disk in
    front of it, and the retention purge."""
    policy = config.audit
    cipher = (
        PromptCipher.from_refs(policy.encryption_key, policy.previous_encryption_keys)
        if policy.encryption_key
        else None
    )
    url = expand_database_url(database_url)
    store = AuditStore(url, policy, cipher)
    await store.init()
    outbox = AuditOutbox(
        store,
        spool_dir(policy.outbox.spool_dir, url),
        policy.outbox,
        cipher,
        instance=f"pid-{os.getpid()}-{uuid.uuid4().hex[:8]}",
    )
    outbox.start()
    retention = RetentionTask(store, policy.purge_interval_s)
    retention.start()
    return store, outbox, retention


def spool_dir(configured: str | None, database_url: str) -> Path:
    """The configured spool, or one per database: beside a SQLite file, else under
    $RAYGATE_HOME keyed by the database URL (so two platforms never share a spool)."""
    if configured is not None:
        return Path(configured.replace("$RAYGATE_HOME", str(raygate_home()))).expanduser()
    if database_url.startswith("sqlite+aiosqlite:///"):
        return Path(database_url.removeprefix("sqlite+aiosqlite:///") + ".audit-spool")
    digest = hashlib.sha256(database_url.encode()).hexdigest()[:16]
    return raygate_home() / "audit-spool" / digest


@functools.cache
def shared_guardrails() -> Guardrails:
    """One cheap tier per process (about 1.7 s to build, 110 MB): it holds no request state
    and is safe to share, so every gateway built in a process uses the same one."""
    return Guardrails()


def shared_models(config: PlatformConfig) -> dict[str, tuple[FairSharePolicy, int]]:
    """Models shared between teams: their fair-share policy (team weights from the model's
    tenancy) and their capacity, replicas x max_ongoing_requests (at most the autoscaling
    maximum: the fair queue only matters once that is reached)."""
    out: dict[str, tuple[FairSharePolicy, int]] = {}
    for model in config.models:
        tenancy = model.tenancy
        if tenancy is None or tenancy.sharing != "shared" or not model.fair_share.enabled:
            continue
        spec = model.deployment
        replicas = spec.autoscaling.max_replicas if spec.autoscaling else spec.num_replicas
        weights = {**model.fair_share.weights, **tenancy.weights}
        policy = model.fair_share.model_copy(update={"weights": weights})
        out[model.name] = (policy, replicas * spec.max_ongoing_requests)
    return out
