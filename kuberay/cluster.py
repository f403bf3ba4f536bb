"""The cluster section: what a RayService needs beyond the platform config.

Kept beside the Serve deploy YAML in its own file (see ``kuberay/gke-example.yaml``):
cluster name and namespace, image, Ray version, the Kubernetes service account for
Workload Identity, worker group sizes, GPU node pools per accelerator type, the Kubernetes
Secret behind each ``env:NAME`` reference, the upgrade strategy and the optional Envoy JWT
sidecar. No secret values: only the names of Secrets and their keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from models.spec import AcceleratorKind

__all__ = [
    "ClusterSpec",
    "CpuWorkers",
    "EnvoyJwt",
    "GpuPool",
    "HeadGroup",
    "IncrementalUpgrade",
    "SecretKeyRef",
    "WorkloadIdentity",
    "load_cluster_spec",
]

DnsLabel = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Quantity = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti)?$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SecretKeyRef(_Frozen):
    """A key of a Kubernetes Secret; ``key`` defaults to the env variable's name."""

    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")]
    key: str | None = None


class HeadGroup(_Frozen):
    """The head pod runs the ingress (no GPUs)."""

    cpu: Quantity = "4"
    memory: Quantity = "16Gi"


class CpuWorkers(_Frozen):
    """CPU workers: guardrails, embeddings, llama.cpp models."""

    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(4, ge=1)
    cpu: Quantity = "8"
    memory: Quantity = "32Gi"


class GpuPool(_Frozen):
    """A GKE node pool of one accelerator type: one Ray worker pod per node."""

    gpus_per_node: int = Field(1, ge=1, le=16)
    cpu: Quantity = "7"
    memory: Quantity = "28Gi"
    spot: bool = False


class WorkloadIdentity(_Frozen):
    """Keyless cloud identity of the pods' Kubernetes service account.

    ``gcp_service_account``: the GSA the KSA is bound to (GKE Workload Identity, Vertex AI).
    ``aws_role_arn``: the IAM role assumed through web identity (Bedrock), from a projected
    service-account token with audience ``aws_audience``.
    """

    gcp_service_account: (
        Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.iam\.gserviceaccount\.com$")]
        | None
    ) = None
    aws_role_arn: (
        Annotated[str, StringConstraints(pattern=r"^arn:aws:iam::\d{12}:role/.+")] | None
    ) = None
    aws_audience: str = "sts.amazonaws.com"


class EnvoyJwt(_Frozen):
    """An Envoy sidecar on the head pod verifying JWTs (the platform config's
    ``auth.jwt_issuers``) in front of the Serve port, exposed by its own Service."""

    image: str = "envoyproxy/envoy:v1.35.3"
    port: int = Field(8443, ge=1024, le=65535)
    admin_port: int = Field(9901, ge=1024, le=65535)
    cpu: Quantity = "500m"
    memory: Quantity = "256Mi"


class IncrementalUpgrade(_Frozen):
    """KubeRay's ``NewClusterWithIncrementalUpgrade``: a new cluster grows while traffic
    moves to it in steps through the Gateway API (needs the operator's
    ``RayServiceIncrementalUpgrade`` feature gate and a GatewayClass)."""

    gateway_class_name: str = "istio"
    step_size_percent: int = Field(25, ge=1, le=100)
    interval_seconds: int = Field(60, ge=1)
    max_surge_percent: int = Field(100, ge=1, le=100)


class ClusterSpec(_Frozen):
    name: DnsLabel
    namespace: DnsLabel = "raygate"
    image: str
    ray_version: str = "2.60.0"
    service_account: DnsLabel = "raygate"
    workload_identity: WorkloadIdentity = WorkloadIdentity()
    head: HeadGroup = HeadGroup()
    cpu_workers: CpuWorkers = CpuWorkers()
    gpu_pools: Mapping[AcceleratorKind, GpuPool] = Field(default_factory=dict)
    secrets: Mapping[EnvName, SecretKeyRef] = Field(default_factory=dict)
    # None: KubeRay's default blue/green NewCluster upgrade (needs 2x capacity).
    upgrade: IncrementalUpgrade | None = IncrementalUpgrade()
    envoy: EnvoyJwt | None = None
    idle_timeout_seconds: int = Field(300, ge=0)


def load_cluster_spec(path: str | Path) -> ClusterSpec:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
        return ClusterSpec.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read cluster spec: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"{path}: {problems}") from None
