"""Platform Serve deploy config + cluster section -> KubeRay manifests.

``render_manifests`` returns, in apply order: the ServiceAccount, the Envoy ConfigMap and
Service (when the JWT sidecar is on) and the ``ray.io/v1`` RayService whose
``serveConfigV2`` is the Serve deploy YAML itself (secrets still ``env:NAME``; each one
reaches the Ray containers as ``valueFrom.secretKeyRef``, never as a value).
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from kuberay.cluster import ClusterSpec, GpuPool
from kuberay.envoy import envoy_bootstrap
from models.spec import AcceleratorKind, ModelSpec
from serve.config import IMPORT_PATH
from serve.settings import SECRET_REF

__all__ = [
    "PERFORMANCE_ENV",
    "gpu_worker_bounds",
    "raygate_args",
    "render_manifests",
    "render_rayservice",
    "secret_names",
]

PERFORMANCE_ENV: Mapping[str, str] = {
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_worker_niceness": "0",
}
GKE_ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
CLUSTER_LABEL = "raygate.io/cluster"
AWS_TOKEN_DIR = "/var/run/secrets/aws"
SERVE_PORT_NAME = "serve"


def raygate_args(serve_config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The platform config: the ``args`` of the raygate application."""
    for app in serve_config.get("applications") or ():
        if isinstance(app, Mapping) and app.get("import_path") == IMPORT_PATH:
            args: Mapping[str, Any] = app.get("args") or {}
            return args
    raise ValueError(f"applications: no application with import_path {IMPORT_PATH}")


def secret_names(node: Any) -> list[str]:
    """Every ``NAME`` of an ``env:NAME`` string anywhere in ``node``, sorted, unique."""

    def walk(value: Any) -> Iterator[str]:
        if isinstance(value, str):
            match = SECRET_REF.match(value)
            if match:
                yield match.group(1)
        elif isinstance(value, Mapping):
            for item in value.values():
                yield from walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                yield from walk(item)

    return sorted(set(walk(node)))


def gpu_worker_bounds(
    args: Mapping[str, Any], pools: Mapping[AcceleratorKind, GpuPool]
) -> dict[AcceleratorKind, tuple[int, int]]:
    """``{accelerator type: (min pods, max pods)}`` for the vLLM models' autoscaling
    bounds: replicas x GPUs per replica, packed onto pods of ``gpus_per_node`` GPUs. The
    maximum leaves room for a rollout at full scale: every config change replaces every
    replica, and with ``max_surge_percent`` the replacements start first (that many
    percent of ``max_replicas`` more, rounded up)."""
    gpus: dict[AcceleratorKind, list[int]] = {}
    for model in args.get("models") or ():
        if (model.get("backend") or {}).get("kind") != "vllm":
            continue
        spec = ModelSpec.from_platform_model(model)
        assert spec.accelerator is not None  # vllm specs always have one
        kind, count = spec.accelerator.type, spec.accelerator.count
        pool = pools.get(kind)
        if pool is None:
            raise ValueError(
                f"model {spec.name!r} needs {kind} GPUs but the cluster section has no "
                f"gpu_pools.{kind}"
            )
        if count > pool.gpus_per_node:
            raise ValueError(
                f"model {spec.name!r} needs {count} x {kind} per replica; gpu_pools.{kind} "
                f"nodes have {pool.gpus_per_node}"
            )
        low, high = gpus.setdefault(kind, [0, 0])
        peak = spec.autoscaling.max_replicas
        surge = math.ceil(peak * spec.max_surge_percent / 100)
        gpus[kind] = [
            low + spec.autoscaling.min_replicas * count,
            high + (peak + surge) * count,
        ]
    return {
        kind: (
            math.ceil(low / pools[kind].gpus_per_node),
            math.ceil(high / pools[kind].gpus_per_node),
        )
        for kind, (low, high) in sorted(gpus.items())
    }


def _env(cluster: ClusterSpec, secrets: list[str]) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in PERFORMANCE_ENV.items()]
    identity = cluster.workload_identity
    if identity.aws_role_arn is not None:
        env += [
            {"name": "AWS_ROLE_ARN", "value": identity.aws_role_arn},
            {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": f"{AWS_TOKEN_DIR}/token"},
        ]
    missing = [name for name in secrets if name not in cluster.secrets]
    if missing:
        raise ValueError(
            f"the platform config references env:{', env:'.join(missing)} but the cluster "
            "section's secrets do not say which Kubernetes Secret holds them"
        )
    for name in secrets:
        ref = cluster.secrets[name]
        env.append(
            {
                "name": name,
                "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key or name}},
            }
        )
    return env


def _resources(cpu: str, memory: str, gpus: int = 0) -> dict[str, Any]:
    amounts: dict[str, Any] = {"cpu": cpu, "memory": memory}
    if gpus:
        amounts["nvidia.com/gpu"] = str(gpus)
    return {"requests": dict(amounts), "limits": dict(amounts)}


class _Pods:
    """Shared parts of every pod template."""

    def __init__(self, cluster: ClusterSpec, secrets: list[str]) -> None:
        self.cluster = cluster
        self.env = _env(cluster, secrets)
        self.aws = cluster.workload_identity.aws_role_arn is not None

    def ray_container(
        self, name: str, resources: dict[str, Any], ports: list[Any]
    ) -> dict[str, Any]:
        container: dict[str, Any] = {
            "name": name,
            "image": self.cluster.image,
            "env": copy.deepcopy(self.env),
            "resources": resources,
        }
        if ports:
            container["ports"] = ports
        if self.aws:
            container["volumeMounts"] = [
                {"name": "aws-token", "mountPath": AWS_TOKEN_DIR, "readOnly": True}
            ]
        return container

    def pod(self, containers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "serviceAccountName": self.cluster.service_account,
            "containers": containers,
            **extra,
        }
        if self.aws:
            token = {
                "audience": self.cluster.workload_identity.aws_audience,
                "expirationSeconds": 3600,
                "path": "token",
            }
            spec.setdefault("volumes", []).append(
                {"name": "aws-token", "projected": {"sources": [{"serviceAccountToken": token}]}}
            )
        return {"metadata": {"labels": {CLUSTER_LABEL: self.cluster.name}}, "spec": spec}


def _head_group(pods: _Pods, serve_port: int, envoy_config: str | None) -> dict[str, Any]:
    cluster = pods.cluster
    ports = [
        {"name": "gcs-server", "containerPort": 6379},
        {"name": "dashboard", "containerPort": 8265},
        {"name": "client", "containerPort": 10001},
        {"name": SERVE_PORT_NAME, "containerPort": serve_port},
    ]
    containers = [
        pods.ray_container("ray-head", _resources(cluster.head.cpu, cluster.head.memory), ports)
    ]
    extra: dict[str, Any] = {}
    template_annotations: dict[str, str] = {}
    if cluster.envoy is not None and envoy_config is not None:
        envoy = cluster.envoy
        containers.append(
            {
                "name": "envoy-jwt",
                "image": envoy.image,
                "args": ["-c", "/etc/envoy/envoy.yaml", "--log-level", "warn"],
                "ports": [{"name": "jwt", "containerPort": envoy.port}],
                "resources": _resources(envoy.cpu, envoy.memory),
                "volumeMounts": [
                    {"name": "envoy-config", "mountPath": "/etc/envoy", "readOnly": True}
                ],
            }
        )
        extra["volumes"] = [
            {"name": "envoy-config", "configMap": {"name": f"{cluster.name}-envoy"}}
        ]
        # A changed Envoy config changes the pod template, so KubeRay rolls it out.
        digest = hashlib.sha256(envoy_config.encode()).hexdigest()
        template_annotations["raygate.io/envoy-config-sha256"] = digest
    template = pods.pod(containers, **extra)
    if template_annotations:
        template["metadata"]["annotations"] = template_annotations
    return {"rayStartParams": {"num-gpus": "0", "dashboard-host": "0.0.0.0"}, "template": template}


def _cpu_group(pods: _Pods) -> dict[str, Any]:
    workers = pods.cluster.cpu_workers
    resources = _resources(workers.cpu, workers.memory)
    return {
        "groupName": "cpu",
        "replicas": workers.min_replicas,
        "minReplicas": workers.min_replicas,
        "maxReplicas": workers.max_replicas,
        "rayStartParams": {"num-gpus": "0"},
        "template": pods.pod([pods.ray_container("ray-worker", resources, [])]),
    }


def _gpu_group(pods: _Pods, kind: AcceleratorKind, bounds: tuple[int, int]) -> dict[str, Any]:
    from models.vllm_config import RAY_ACCELERATOR_TYPES

    pool = pods.cluster.gpu_pools[kind]
    selector: dict[str, str] = {GKE_ACCELERATOR_LABEL: kind}
    if pool.spot:
        selector["cloud.google.com/gke-spot"] = "true"
    resources = _resources(pool.cpu, pool.memory, pool.gpus_per_node)
    template = pods.pod(
        [pods.ray_container("ray-worker", resources, [])],
        nodeSelector=selector,
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    )
    low, high = bounds
    return {
        "groupName": f"gpu-{kind}",
        "replicas": low,
        "minReplicas": low,
        "maxReplicas": high,
        "rayStartParams": {"num-gpus": str(pool.gpus_per_node)},
        # Ray Serve LLM asks for accelerator_type:<X>; Ray detects only some names.
        "resources": {f"accelerator_type:{RAY_ACCELERATOR_TYPES[kind]}": str(pool.gpus_per_node)},
        "template": template,
    }


def _upgrade_strategy(cluster: ClusterSpec) -> dict[str, Any]:
    upgrade = cluster.upgrade
    if upgrade is None:
        return {"type": "NewCluster"}
    return {
        "type": "NewClusterWithIncrementalUpgrade",
        "clusterUpgradeOptions": {
            "gatewayClassName": upgrade.gateway_class_name,
            "stepSizePercent": upgrade.step_size_percent,
            "intervalSeconds": upgrade.interval_seconds,
            "maxSurgePercent": upgrade.max_surge_percent,
        },
    }


def _serve_port(serve_config: Mapping[str, Any]) -> int:
    return int((serve_config.get("http_options") or {}).get("port", 8000))


def _envoy_config(serve_config: Mapping[str, Any], cluster: ClusterSpec) -> str | None:
    if cluster.envoy is None:
        return None
    issuers = (raygate_args(serve_config).get("auth") or {}).get("jwt_issuers") or []
    bootstrap = envoy_bootstrap(
        issuers, cluster.envoy.port, cluster.envoy.admin_port, _serve_port(serve_config)
    )
    return yaml.safe_dump(bootstrap, sort_keys=False)


def render_rayservice(serve_config: Mapping[str, Any], cluster: ClusterSpec) -> dict[str, Any]:
    args = raygate_args(serve_config)
    pods = _Pods(cluster, secret_names(args))
    groups = [_cpu_group(pods)] + [
        _gpu_group(pods, kind, bounds)
        for kind, bounds in gpu_worker_bounds(args, cluster.gpu_pools).items()
    ]
    head = _head_group(pods, _serve_port(serve_config), _envoy_config(serve_config, cluster))
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {
            "name": cluster.name,
            "namespace": cluster.namespace,
            "labels": {CLUSTER_LABEL: cluster.name},
        },
        "spec": {
            "serveConfigV2": yaml.safe_dump(dict(serve_config), sort_keys=False),
            "upgradeStrategy": _upgrade_strategy(cluster),
            "rayClusterConfig": {
                "rayVersion": cluster.ray_version,
                "enableInTreeAutoscaling": True,
                "autoscalerOptions": {
                    "upscalingMode": "Default",
                    "idleTimeoutSeconds": cluster.idle_timeout_seconds,
                    "resources": _resources("500m", "512Mi"),
                },
                "headGroupSpec": head,
                "workerGroupSpecs": groups,
            },
        },
    }


def _service_account(cluster: ClusterSpec) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": cluster.service_account, "namespace": cluster.namespace}
    gsa = cluster.workload_identity.gcp_service_account
    if gsa is not None:
        metadata["annotations"] = {"iam.gke.io/gcp-service-account": gsa}
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata}


def render_manifests(serve_config: Mapping[str, Any], cluster: ClusterSpec) -> list[dict[str, Any]]:
    """Every manifest, in the order to apply them."""
    manifests = [_service_account(cluster)]
    envoy_config = _envoy_config(serve_config, cluster)
    if cluster.envoy is not None and envoy_config is not None:
        meta = {"namespace": cluster.namespace, "labels": {CLUSTER_LABEL: cluster.name}}
        manifests.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"{cluster.name}-envoy", **meta},
                "data": {"envoy.yaml": envoy_config},
            }
        )
        manifests.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"{cluster.name}-jwt", **meta},
                "spec": {
                    # Head pods of the active and, during an upgrade, the pending cluster.
                    "selector": {CLUSTER_LABEL: cluster.name, "ray.io/node-type": "head"},
                    "ports": [{"name": "jwt", "port": cluster.envoy.port, "targetPort": "jwt"}],
                },
            }
        )
    manifests.append(render_rayservice(serve_config, cluster))
    return manifests
