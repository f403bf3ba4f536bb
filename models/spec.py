"""Model specs: one open-weight model per YAML file under ``models/specs/``.

A spec says what to serve (source, engine), on what (accelerator), how it scales, and
who may use it (owner team, dedicated or shared with fair-share weights). The pieces are
standalone pydantic models so the platform config can embed them as they are
(``VLLMBackend`` in its backend union, ``Tenancy`` on a model); this module never imports
``serve``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

__all__ = [
    "Accelerator",
    "AcceleratorKind",
    "Autoscaling",
    "LoraAdapter",
    "ModelSpec",
    "Tenancy",
    "VLLMBackend",
    "accelerator_demand",
    "load_spec",
    "load_specs",
    "validate_accelerator_quotas",
]

Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")]
# GKE's accelerator names (the `cloud.google.com/gke-accelerator` node label).
AcceleratorKind = Literal[
    "nvidia-tesla-t4",
    "nvidia-l4",
    "nvidia-tesla-a100",
    "nvidia-a100-80gb",
    "nvidia-h100-80gb",
    "nvidia-h100-mega-80gb",
    "nvidia-h200-141gb",
    "nvidia-b200",
]

_REMOTE = ("gs://", "s3://")
# Set from typed spec fields; an engine option must not contradict them.
_RENDERED_OPTIONS = frozenset(
    {"model", "tensor_parallel_size", "pipeline_parallel_size", "max_model_len", "enable_lora"}
)
# Options that would run code from the model repository or blind the platform's metrics.
_REFUSED_OPTIONS = {
    "trust_remote_code": "runs Python shipped with the model; vet and vendor the code instead",
    "disable_log_stats": "engine metrics need log stats (Ray Serve LLM refuses it too)",
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_source(source: str) -> str:
    if source.startswith("hf:"):
        org, _, repo = source[3:].partition("/")
        if not org or not repo or "/" in repo:
            raise ValueError(f"source {source!r}: expected hf:<org>/<name>")
    elif source.startswith(_REMOTE):
        if len(source.rstrip("/")) <= len("gs://"):
            raise ValueError(f"source {source!r}: a bucket mirror needs a bucket and path")
    elif source.startswith("package:"):
        dist, _, filename = source[len("package:") :].partition("/")
        if not dist or not filename:
            raise ValueError(f"source {source!r}: expected package:<dist>/<file>")
    elif not source:
        raise ValueError("source must not be empty")
    return source


def _check_vllm_source(source: str) -> str:
    if source.startswith("package:"):
        raise ValueError(
            f"source {source!r}: vLLM loads from hf:, gs://, s3:// or a local path, "
            "not a file inside a Python package (that is the llama_cpp engine's form)"
        )
    return _check_source(source)


def _check_engine_options(options: Mapping[str, Any]) -> Mapping[str, Any]:
    rendered = sorted(_RENDERED_OPTIONS & set(options))
    if rendered:
        raise ValueError(
            f"engine_options {rendered} are set from the spec's own fields "
            "(source, accelerator, max_model_len, lora_adapters)"
        )
    for key, why in _REFUSED_OPTIONS.items():
        if options.get(key):
            raise ValueError(f"engine_options.{key} is refused: {why}")
    return options


def _check_adapters(adapters: tuple[LoraAdapter, ...]) -> tuple[LoraAdapter, ...]:
    """Ray Serve LLM loads adapters from one folder: ``<folder>/<adapter name>``."""
    parents = {posixpath.dirname(a.source.rstrip("/")) for a in adapters}
    if len(parents) > 1:
        raise ValueError(
            f"lora_adapters must share one parent folder (Ray Serve LLM's "
            f"dynamic_lora_loading_path), got {sorted(parents)}"
        )
    names = [a.name for a in adapters]
    if len(set(names)) != len(names):
        raise ValueError("lora_adapters names must be unique")
    return adapters


Source = Annotated[str, AfterValidator(_check_source)]
VLLMSource = Annotated[str, AfterValidator(_check_vllm_source)]
EngineOptions = Annotated[Mapping[str, Any], AfterValidator(_check_engine_options)]


class Accelerator(_Frozen):
    """GPUs per replica. ``count`` GPUs split as tensor_parallel x pipeline stages."""

    type: AcceleratorKind
    count: int = Field(1, ge=1, le=16)
    tensor_parallel: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _parallelism(self) -> Accelerator:
        tp = self.tensor_parallel_size
        if tp > self.count:
            raise ValueError(f"tensor_parallel {tp} exceeds accelerator count {self.count}")
        if self.count % tp:
            raise ValueError(f"accelerator count {self.count} is not a multiple of {tp}")
        return self

    @property
    def tensor_parallel_size(self) -> int:
        return self.tensor_parallel if self.tensor_parallel is not None else self.count

    @property
    def pipeline_parallel_size(self) -> int:
        return self.count // self.tensor_parallel_size


class LoraAdapter(_Frozen):
    """An adapter served as ``<model>:<name>``; its folder's last segment is its name."""

    name: Name
    source: Annotated[str, StringConstraints(pattern=r"^(gs|s3)://[^/]+/.+")]

    @model_validator(mode="after")
    def _named_folder(self) -> LoraAdapter:
        if posixpath.basename(self.source.rstrip("/")) != self.name:
            raise ValueError(
                f"LoRA adapter {self.name!r}: its source folder must end in /{self.name} "
                f"(Ray Serve LLM finds adapters by folder name), got {self.source!r}"
            )
        return self


LoraAdapters = Annotated[tuple[LoraAdapter, ...], AfterValidator(_check_adapters)]


class Autoscaling(_Frozen):
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(1, ge=1)
    target_ongoing_requests: float = Field(16, gt=0)

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must not exceed max_replicas")
        return self


class Tenancy(_Frozen):
    """Who pays and who may use it: ``dedicated`` to the owner team, or ``shared``
    with per-team fair-share weights (teams not listed weigh 1)."""

    owner_team: Name
    sharing: Literal["dedicated", "shared"] = "shared"
    weights: Mapping[Name, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _weights_only_when_shared(self) -> Tenancy:
        if self.sharing == "dedicated" and self.weights:
            raise ValueError("weights apply only to sharing: shared")
        return self


class VLLMBackend(_Frozen):
    """The ``vllm`` backend kind of the platform config (Ray Serve LLM on GPUs)."""

    kind: Literal["vllm"]
    source: VLLMSource
    accelerator: Accelerator
    max_model_len: int | None = Field(None, ge=256)
    engine_options: EngineOptions = Field(default_factory=dict)
    lora_adapters: LoraAdapters = ()


class ModelSpec(_Frozen):
    """One catalog entry (``models/specs/<name>.yaml``)."""

    name: Name
    aliases: tuple[Name, ...] = ()
    source: Source
    engine: Literal["vllm", "llama_cpp"]
    accelerator: Accelerator | None = None
    max_model_len: int | None = Field(None, ge=256)
    engine_options: EngineOptions = Field(default_factory=dict)
    lora_adapters: LoraAdapters = ()
    autoscaling: Autoscaling = Autoscaling()
    max_ongoing_requests: int = Field(32, ge=1)
    # Replacements start before old replicas stop on a config change (no reload outage);
    # 0 on a cluster that cannot fit one more replica of this model during a rollout.
    max_surge_percent: int = Field(100, ge=0, le=100)
    tenancy: Tenancy | None = None  # None: platform-owned, shared equally

    @model_validator(mode="after")
    def _engine_fields(self) -> ModelSpec:
        if self.engine == "vllm":
            if self.accelerator is None:
                raise ValueError("engine vllm needs an accelerator")
            _check_vllm_source(self.source)
        else:
            extra = [
                f
                for f in ("accelerator", "engine_options", "lora_adapters", "max_model_len")
                if getattr(self, f)
            ]
            if extra:
                raise ValueError(f"engine llama_cpp runs on CPU and takes no {extra}")
            if self.source.startswith(("hf:", *_REMOTE)):
                raise ValueError("engine llama_cpp loads a local path or package:<dist>/<file>")
        return self

    def vllm_backend(self) -> VLLMBackend:
        if self.engine != "vllm" or self.accelerator is None:
            raise ValueError(f"model {self.name!r} does not run on vLLM")
        return VLLMBackend(
            kind="vllm",
            source=self.source,
            accelerator=self.accelerator,
            max_model_len=self.max_model_len,
            engine_options=self.engine_options,
            lora_adapters=self.lora_adapters,
        )

    def platform_model(self) -> dict[str, Any]:
        """This spec as an entry of the platform config's ``models`` list."""
        backend: dict[str, Any] = (
            self.vllm_backend().model_dump(mode="json")
            if self.engine == "vllm"
            else {"kind": "llama_cpp", "model_path": self.source}
        )
        entry: dict[str, Any] = {
            "name": self.name,
            "aliases": list(self.aliases),
            "backend": backend,
            "deployment": {
                "max_ongoing_requests": self.max_ongoing_requests,
                "autoscaling": self.autoscaling.model_dump(mode="json"),
                "max_surge_percent": self.max_surge_percent,
            },
        }
        if self.tenancy is not None:
            entry["tenancy"] = self.tenancy.model_dump(mode="json")
        return entry

    @classmethod
    def from_platform_model(cls, model: Mapping[str, Any]) -> ModelSpec:
        """The spec of a platform config ``models`` entry (a dict, e.g. ``model_dump()``)
        whose backend is ``vllm`` or ``llama_cpp``."""
        backend = dict(model["backend"])
        kind = backend.pop("kind")
        deployment = model.get("deployment") or {}
        auto = deployment.get("autoscaling")
        if auto is None:
            replicas = int(deployment.get("num_replicas", 1))
            auto = {"min_replicas": replicas, "max_replicas": replicas}
        fields: dict[str, Any] = {
            "name": model["name"],
            "aliases": tuple(model.get("aliases") or ()),
            "autoscaling": {
                k: auto[k]
                for k in ("min_replicas", "max_replicas", "target_ongoing_requests")
                if k in auto
            },
            "tenancy": model.get("tenancy"),
        }
        for key in ("max_ongoing_requests", "max_surge_percent"):
            if key in deployment:
                fields[key] = deployment[key]
        if kind == "vllm":
            fields.update(engine="vllm", **backend)
        elif kind == "llama_cpp":
            fields.update(engine="llama_cpp", source=backend["model_path"])
        else:
            raise ValueError(f"model {model['name']!r}: backend {kind!r} has no model spec")
        return cls.model_validate(fields)


def load_spec(path: str | Path) -> ModelSpec:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read model spec: {exc}") from None
    try:
        spec = ModelSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"{path}: {problems}") from None
    if spec.name != path.stem:
        raise ValueError(f"{path}: the file must be named after the model ({spec.name}.yaml)")
    return spec


def load_specs(directory: str | Path = Path(__file__).parent / "specs") -> tuple[ModelSpec, ...]:
    """Every ``*.yaml`` under ``directory``, sorted by name; names and aliases unique."""
    specs = tuple(load_spec(p) for p in sorted(Path(directory).glob("*.yaml")))
    seen: set[str] = set()
    for spec in specs:
        for name in (spec.name, *spec.aliases):
            if name in seen:
                raise ValueError(f"{directory}: model name or alias {name!r} is defined twice")
            seen.add(name)
    return specs


def accelerator_demand(specs: Iterable[ModelSpec]) -> dict[str, dict[str, int]]:
    """``{team: {accelerator type: GPUs}}`` that dedicated models hold at max_replicas."""
    demand: dict[str, dict[str, int]] = {}
    for spec in specs:
        if spec.tenancy is None or spec.tenancy.sharing != "dedicated":
            continue
        if spec.accelerator is None:
            continue
        team = demand.setdefault(spec.tenancy.owner_team, {})
        gpus = spec.autoscaling.max_replicas * spec.accelerator.count
        team[spec.accelerator.type] = team.get(spec.accelerator.type, 0) + gpus
    return demand


def validate_accelerator_quotas(
    quotas: Mapping[str, Mapping[str, int]], specs: Iterable[ModelSpec]
) -> None:
    """Raise ValueError when a team's dedicated models could hold more accelerators of a
    type (``max_replicas x count``, summed) than its quota; a missing quota is 0."""
    for team, by_type in sorted(accelerator_demand(specs).items()):
        for kind, wanted in sorted(by_type.items()):
            allowed = quotas.get(team, {}).get(kind, 0)
            if wanted > allowed:
                raise ValueError(
                    f"team {team!r}: dedicated models need up to {wanted} x {kind} "
                    f"(max_replicas x accelerator count), quota is {allowed}"
                )
