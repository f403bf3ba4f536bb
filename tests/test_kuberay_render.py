"""Rendering the RayService (and friends) from the platform config + cluster section."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from test_kuberay_crd import REPO, crd

from kuberay.cluster import ClusterSpec, load_cluster_spec
from kuberay.render import PERFORMANCE_ENV, render_manifests, render_rayservice, secret_names
from models.spec import ModelSpec, load_specs
from serve.cli import main

CLUSTER_YAML = REPO / "serve" / "configs" / "cluster.yaml"
SECRETS = [  # sorted: as secret_names() lists them
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "RAYGATE_ADMIN_KEY",
    "RAYGATE_BOOTSTRAP_KEY",
    "RAYGATE_BUDGET_WEBHOOK",
    "RAYGATE_DATABASE_URL",
    "RAYGATE_REDIS_URL",
    "VLLM_API_KEY",
]


def serve_config(*vllm_models: ModelSpec) -> dict[str, Any]:
    """serve/configs/cluster.yaml plus vLLM models (their specs' platform entries)."""
    config: dict[str, Any] = yaml.safe_load(CLUSTER_YAML.read_text())
    config["applications"][0]["args"]["models"] += [m.platform_model() for m in vllm_models]
    return config


def qwen() -> ModelSpec:
    return next(s for s in load_specs() if s.name == "qwen2.5-7b-instruct")


def h100(count: int = 2, max_replicas: int = 3, surge: int = 100) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": "llama-70b",
            "source": "gs://weights/llama-70b",
            "engine": "vllm",
            "accelerator": {"type": "nvidia-h100-80gb", "count": count},
            "autoscaling": {"min_replicas": 1, "max_replicas": max_replicas},
            "max_surge_percent": surge,
        }
    )


def cluster(**overrides: Any) -> ClusterSpec:
    fields: dict[str, Any] = {
        "name": "raygate",
        "namespace": "llm",
        "image": "registry.example/raygate:1",
        "gpu_pools": {"nvidia-l4": {}, "nvidia-h100-80gb": {"gpus_per_node": 8}},
        "secrets": {name: {"name": "raygate-secrets"} for name in SECRETS},
    }
    fields.update(overrides)
    return ClusterSpec.model_validate(fields)


def ray_containers(rs: dict[str, Any]) -> list[dict[str, Any]]:
    config = rs["spec"]["rayClusterConfig"]
    pods = [config["headGroupSpec"]] + config["workerGroupSpecs"]
    return [
        c for p in pods for c in p["template"]["spec"]["containers"] if c["name"].startswith("ray-")
    ]


def groups(rs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["groupName"]: g for g in rs["spec"]["rayClusterConfig"]["workerGroupSpecs"]}


@pytest.mark.parametrize(
    "spec",
    [
        cluster(),
        cluster(
            upgrade=None,
            envoy={},
            workload_identity={"aws_role_arn": "arn:aws:iam::123456789012:role/r"},
        ),
        cluster(gpu_pools={"nvidia-l4": {"spot": True}, "nvidia-h100-80gb": {"gpus_per_node": 8}}),
    ],
)
def test_rendered_rayservice_validates_against_the_crd(spec: Any) -> None:
    rs = render_rayservice(serve_config(qwen(), h100()), spec)
    assert crd().errors(rs) == []


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda rs: rs["spec"].update(serveConfigV3="x"), "serveConfigV3"),
        (
            lambda rs: rs["spec"]["rayClusterConfig"]["workerGroupSpecs"][0].pop("groupName"),
            "groupName",
        ),
        (
            lambda rs: rs["spec"]["rayClusterConfig"].update(enableInTreeAutoscaling="yes"),
            "boolean",
        ),
        (
            lambda rs: rs["spec"]["rayClusterConfig"]["autoscalerOptions"].update(
                upscalingMode="Fast"
            ),
            "Fast",
        ),
        (lambda rs: rs.update(kind="RayCluster"), "apiVersion/kind"),
    ],
)
def test_the_crd_check_catches_mistakes(mutate: Any, message: str) -> None:
    rs = render_rayservice(serve_config(), cluster())
    mutate(rs)
    errors = crd().errors(rs)
    assert errors and any(message in e for e in errors), errors


def test_crd_defaults_are_applied_before_validation() -> None:
    defaulted = crd().defaulted(render_rayservice(serve_config(), cluster()))
    worker = defaulted["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    assert worker["numOfHosts"] == 1
    assert defaulted["spec"]["upgradeStrategy"]["clusterUpgradeOptions"]["maxSurgePercent"] == 100


def test_serve_config_v2_is_the_deploy_yaml_with_secrets_by_reference() -> None:
    config = serve_config(qwen())
    rs = render_rayservice(config, cluster())
    carried = yaml.safe_load(rs["spec"]["serveConfigV2"])
    assert carried == config
    assert carried["applications"][0]["args"]["state"]["url"] == "env:RAYGATE_REDIS_URL"


def test_secrets_reach_every_ray_container_only_as_secret_key_refs() -> None:
    spec = cluster(
        secrets={
            **{n: {"name": "raygate-secrets"} for n in SECRETS},
            "VLLM_API_KEY": {"name": "vllm", "key": "token"},
        }
    )
    rs = render_rayservice(serve_config(qwen()), spec)
    assert secret_names(yaml.safe_load(rs["spec"]["serveConfigV2"])) == SECRETS
    containers = ray_containers(rs)
    assert len(containers) == 3  # head, cpu, one L4 group
    for container in containers:
        env = {e["name"]: e for e in container["env"]}
        for name, value in PERFORMANCE_ENV.items():
            assert env[name] == {"name": name, "value": value}
        for name in SECRETS:
            assert "value" not in env[name]
            assert env[name]["valueFrom"]["secretKeyRef"]["name"] in ("raygate-secrets", "vllm")
        assert env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "vllm", "key": "token"}
        assert env["RAYGATE_REDIS_URL"]["valueFrom"]["secretKeyRef"]["key"] == "RAYGATE_REDIS_URL"


def test_a_secret_without_a_kubernetes_secret_is_refused() -> None:
    spec = cluster(secrets={n: {"name": "s"} for n in SECRETS if n != "VLLM_API_KEY"})
    with pytest.raises(ValueError, match="env:VLLM_API_KEY"):
        render_rayservice(serve_config(), spec)


def test_head_has_no_gpus_and_autoscaling_is_in_tree() -> None:
    rs = render_rayservice(serve_config(qwen()), cluster())
    config = rs["spec"]["rayClusterConfig"]
    assert config["headGroupSpec"]["rayStartParams"]["num-gpus"] == "0"
    assert config["enableInTreeAutoscaling"] is True
    assert config["autoscalerOptions"]["idleTimeoutSeconds"] == 300
    head = config["headGroupSpec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in head["containers"][0]["resources"]["limits"]
    assert head["serviceAccountName"] == "raygate"
    assert {"name": "serve", "containerPort": 8000} in head["containers"][0]["ports"]


def test_one_gpu_group_per_accelerator_type_sized_from_autoscaling_bounds() -> None:
    # qwen: 1 x L4, replicas 1..2; llama: 2 x H100 per replica, replicas 1..3, 8 per node
    rs = render_rayservice(serve_config(qwen(), h100(count=2, max_replicas=3)), cluster())
    by_name = groups(rs)
    assert sorted(by_name) == ["cpu", "gpu-nvidia-h100-80gb", "gpu-nvidia-l4"]
    l4 = by_name["gpu-nvidia-l4"]
    # max: room for a rollout at full scale (max_replicas + 100 % surge)
    assert (l4["replicas"], l4["minReplicas"], l4["maxReplicas"]) == (1, 1, 4)
    h = by_name["gpu-nvidia-h100-80gb"]
    assert (h["minReplicas"], h["maxReplicas"]) == (1, 2)  # 2..12 GPUs on 8-GPU nodes
    assert h["resources"] == {"accelerator_type:H100": "8"}
    pod = l4["template"]["spec"]
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert l4["rayStartParams"]["num-gpus"] == "1"
    assert by_name["cpu"]["rayStartParams"] == {"num-gpus": "0"}


@pytest.mark.parametrize(
    ("surge", "max_nodes"),
    [
        (0, 2),  # 3 replicas x 4 GPUs = 12 -> 2 nodes of 8 (stop-first rollouts need no room)
        (10, 2),  # + ceil(0.3) = 1 replica -> 16 GPUs -> 2 nodes
        (34, 3),  # + ceil(1.02) = 2 replicas -> 20 GPUs -> 3 nodes (rounded up, not down)
        (100, 3),  # + 3 replicas -> 24 GPUs -> 3 nodes
    ],
)
def test_gpu_packing_rounds_up_to_whole_nodes_with_room_for_the_surge(
    surge: int, max_nodes: int
) -> None:
    rs = render_rayservice(serve_config(h100(count=4, max_replicas=3, surge=surge)), cluster())
    h = groups(rs)["gpu-nvidia-h100-80gb"]
    assert (h["minReplicas"], h["maxReplicas"]) == (1, max_nodes)  # 4 GPUs -> 1 node


def test_no_vllm_models_means_no_gpu_groups() -> None:
    assert list(groups(render_rayservice(serve_config(), cluster()))) == ["cpu"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (cluster(gpu_pools={"nvidia-l4": {}}), "no gpu_pools.nvidia-h100-80gb"),
        (
            cluster(gpu_pools={"nvidia-l4": {}, "nvidia-h100-80gb": {"gpus_per_node": 1}}),
            "nodes have 1",
        ),
    ],
)
def test_gpu_pools_must_fit_the_models(spec: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_rayservice(serve_config(qwen(), h100()), spec)


def test_incremental_upgrade_carries_its_required_options_or_falls_back() -> None:
    strategy = render_rayservice(serve_config(), cluster())["spec"]["upgradeStrategy"]
    assert strategy["type"] == "NewClusterWithIncrementalUpgrade"
    options = strategy["clusterUpgradeOptions"]
    assert {"gatewayClassName", "stepSizePercent", "intervalSeconds"} <= set(options)
    assert render_rayservice(serve_config(), cluster(upgrade=None))["spec"]["upgradeStrategy"] == {
        "type": "NewCluster"
    }


def test_workload_identity_gcp_annotation_and_aws_web_identity() -> None:
    spec = cluster(
        workload_identity={
            "gcp_service_account": "raygate@proj.iam.gserviceaccount.com",
            "aws_role_arn": "arn:aws:iam::123456789012:role/bedrock",
        }
    )
    manifests = render_manifests(serve_config(), spec)
    account = manifests[0]
    assert account["kind"] == "ServiceAccount"
    assert account["metadata"]["annotations"] == {
        "iam.gke.io/gcp-service-account": "raygate@proj.iam.gserviceaccount.com"
    }
    rs = manifests[-1]
    for container in ray_containers(rs):
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["AWS_ROLE_ARN"] == "arn:aws:iam::123456789012:role/bedrock"
        assert env["AWS_WEB_IDENTITY_TOKEN_FILE"] == "/var/run/secrets/aws/token"
        assert container["volumeMounts"][0]["mountPath"] == "/var/run/secrets/aws"
    volume = rs["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["volumes"][0]
    token = volume["projected"]["sources"][0]["serviceAccountToken"]
    assert token["audience"] == "sts.amazonaws.com"


def test_without_identity_there_is_no_annotation_or_aws_env() -> None:
    manifests = render_manifests(serve_config(), cluster())
    assert "annotations" not in manifests[0]["metadata"]
    assert [m["kind"] for m in manifests] == ["ServiceAccount", "RayService"]
    for container in ray_containers(manifests[-1]):
        assert "AWS_ROLE_ARN" not in {e["name"] for e in container["env"]}
        assert "volumeMounts" not in container


def test_envoy_sidecar_verifies_the_platform_jwt_issuers() -> None:
    manifests = render_manifests(serve_config(), cluster(envoy={"port": 8443}))
    assert [m["kind"] for m in manifests] == [
        "ServiceAccount",
        "ConfigMap",
        "Service",
        "RayService",
    ]
    config = yaml.safe_load(manifests[1]["data"]["envoy.yaml"])
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"
    ]
    jwt = manager["http_filters"][0]
    assert jwt["name"] == "envoy.filters.http.jwt_authn"
    provider = jwt["typed_config"]["providers"]["issuer-0"]
    assert provider["issuer"] == "https://accounts.google.com"
    assert provider["audiences"] == ["raygate"]
    assert (
        provider["remote_jwks"]["http_uri"]["uri"] == "https://www.googleapis.com/oauth2/v3/certs"
    )
    assert jwt["typed_config"]["rules"] == [
        {"match": {"prefix": "/"}, "requires": {"provider_name": "issuer-0"}}
    ]
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    serve = clusters["serve"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    assert serve["endpoint"]["address"]["socket_address"] == {
        "address": "127.0.0.1",
        "port_value": 8000,
    }
    assert clusters["jwks-0"]["transport_socket"]["typed_config"]["sni"] == "www.googleapis.com"
    head = manifests[-1]["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]
    envoy = head["spec"]["containers"][1]
    assert envoy["name"] == "envoy-jwt" and envoy["ports"] == [
        {"name": "jwt", "containerPort": 8443}
    ]
    assert "env" not in envoy  # no secrets in the sidecar
    assert head["metadata"]["annotations"]["raygate.io/envoy-config-sha256"]
    service = manifests[2]
    assert service["spec"]["ports"] == [{"name": "jwt", "port": 8443, "targetPort": "jwt"}]
    assert service["spec"]["selector"]["ray.io/node-type"] == "head"


def test_envoy_needs_jwt_issuers() -> None:
    config = serve_config()
    config["applications"][0]["args"]["auth"].pop("jwt_issuers")
    with pytest.raises(ValueError, match=r"needs auth\.jwt_issuers"):
        render_manifests(config, cluster(envoy={}))


def test_cli_render_prints_valid_manifests_for_the_shipped_files(
    capsys: pytest.CaptureFixture[str],
) -> None:
    example = REPO / "kuberay" / "gke-example.yaml"
    assert (
        main(["kuberay", "render", "--config", str(CLUSTER_YAML), "--cluster", str(example)]) == 0
    )
    documents = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["kind"] for d in documents] == [
        "ServiceAccount",
        "ConfigMap",
        "Service",
        "RayService",
    ]
    assert crd().errors(documents[-1]) == []
    assert documents[-1]["metadata"]["namespace"] == load_cluster_spec(example).namespace


def test_cli_render_reports_a_bad_cluster_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("name: Not_A_Label\nimage: x\n")
    assert main(["kuberay", "render", "--cluster", str(bad), "--config", str(CLUSTER_YAML)]) == 2
    assert "name:" in capsys.readouterr().err
