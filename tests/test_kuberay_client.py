"""The RayService client and `raygate kuberay apply|status` against a loopback API server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

sys.path.insert(0, str(Path(__file__).parent))

from fake_kubernetes import FakeKubernetes
from test_kuberay_crd import crd
from test_kuberay_render import CLUSTER_YAML, cluster, qwen, serve_config

from kuberay.client import KubeRayError, RayServiceClient
from kuberay.render import render_manifests
from serve.cli import main

RS = ("ray.io/v1", "rayservices", "llm", "raygate")
STATUS = {
    "serviceStatus": "Running",
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "RunningServeApps",
            "lastTransitionTime": "2026-12-01T00:00:00Z",
            "message": "",
        },
        {
            "type": "UpgradeInProgress",
            "status": "False",
            "reason": "NoPendingCluster",
            "lastTransitionTime": "2026-12-01T00:00:00Z",
            "message": "",
        },
    ],
    "activeServiceStatus": {
        "rayClusterName": "raygate-abc12",
        "applicationStatuses": {
            "raygate": {
                "status": "RUNNING",
                "serveDeploymentStatuses": {
                    "ingress": {"status": "HEALTHY"},
                    "model-qwen2.5-7b-instruct": {"status": "UPDATING", "message": "scaling"},
                },
            }
        },
    },
    "pendingServiceStatus": {"rayClusterName": "raygate-def34"},
}


@pytest.fixture
def fake() -> Iterator[FakeKubernetes]:
    server = FakeKubernetes(crd())
    server.start()
    yield server
    server.stop()


def api_client(fake: FakeKubernetes) -> k8s.ApiClient:
    return k8s.ApiClient(k8s.Configuration(host=fake.host))


def manifests(**overrides: Any) -> list[dict[str, Any]]:
    return render_manifests(serve_config(qwen()), cluster(**overrides))


def test_apply_creates_every_manifest_with_server_side_apply(fake: FakeKubernetes) -> None:
    rs_client = RayServiceClient(api_client(fake), "llm")
    applied = rs_client.apply(manifests(envoy={}))
    assert applied == [
        "ServiceAccount/raygate",
        "ConfigMap/raygate-envoy",
        "Service/raygate-jwt",
        "RayService/raygate",
    ]
    assert [c.method for c in fake.calls] == ["PATCH"] * 4
    assert {c.content_type for c in fake.calls} == {"application/apply-patch+yaml"}
    assert all(c.query == {"fieldManager": "raygate", "force": "true"} for c in fake.calls)
    assert fake.calls[-1].path == "/apis/ray.io/v1/namespaces/llm/rayservices/raygate"
    stored = fake.get(*RS)
    assert stored["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["numOfHosts"] == 1  # defaulted
    assert fake.get("v1", "configmaps", "llm", "raygate-envoy")["data"]["envoy.yaml"]


def test_reapply_updates_and_drops_fields_no_longer_rendered(fake: FakeKubernetes) -> None:
    rs_client = RayServiceClient(api_client(fake), "llm")
    rs_client.apply(manifests())
    first = fake.get(*RS)
    rs_client.apply(manifests(upgrade=None, cpu_workers={"max_replicas": 9}))
    second = fake.get(*RS)
    assert second["metadata"]["generation"] == first["metadata"]["generation"] + 1
    assert second["spec"]["upgradeStrategy"] == {"type": "NewCluster"}  # options gone
    assert second["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplicas"] == 9


def test_an_invalid_rayservice_is_refused_with_the_api_message(fake: FakeKubernetes) -> None:
    broken = manifests()
    broken[-1]["spec"]["rayClusterConfig"]["enableInTreeAutoscaling"] = "yes"
    with pytest.raises(
        KubeRayError, match=r"apply RayService/raygate: 422 .*is invalid.*enableInTreeAutoscaling"
    ) as info:
        RayServiceClient(api_client(fake), "llm").apply(broken)
    assert info.value.status == 422
    assert RS not in fake.objects


def test_get_and_status_of_a_missing_rayservice(fake: FakeKubernetes) -> None:
    rs_client = RayServiceClient(api_client(fake), "llm")
    assert rs_client.get("raygate") is None
    with pytest.raises(KubeRayError, match=r"404 rayservices \"raygate\" not found") as info:
        rs_client.status("raygate")
    assert info.value.status == 404


def test_status_reads_service_clusters_and_applications(fake: FakeKubernetes) -> None:
    rs_client = RayServiceClient(api_client(fake), "llm")
    rs_client.apply(manifests())
    fresh = rs_client.status("raygate")
    assert (fresh.service_status, fresh.ready, fresh.active_cluster) == ("Pending", "Unknown", None)
    fake.set_status("llm", "raygate", STATUS)
    status = rs_client.status("raygate")
    assert fake.calls[-1].path.endswith("/rayservices/raygate/status")
    assert (status.service_status, status.ready, status.upgrading) == ("Running", "True", False)
    assert (status.active_cluster, status.pending_cluster) == ("raygate-abc12", "raygate-def34")
    app = status.applications["raygate"]
    assert app.status == "RUNNING"
    assert app.deployments == {"ingress": "HEALTHY", "model-qwen2.5-7b-instruct": "UPDATING"}
    assert status.lines() == [
        "rayservice raygate: Running (ready: True)",
        "active cluster: raygate-abc12",
        "pending cluster: raygate-def34",
        "application raygate: RUNNING",
        "  deployment ingress: HEALTHY",
        "  deployment model-qwen2.5-7b-instruct: UPDATING",
    ]


def test_patch_serve_config_changes_only_serve_config_v2(fake: FakeKubernetes) -> None:
    rs_client = RayServiceClient(api_client(fake), "llm")
    rs_client.apply(manifests())
    before = fake.get(*RS)
    new_config = serve_config()
    new_config["applications"][0]["args"]["ingress"]["num_replicas"] = 5
    rs_client.patch_serve_config("raygate", new_config)
    after = fake.get(*RS)
    assert fake.calls[-1].content_type == "application/merge-patch+json"
    assert yaml.safe_load(after["spec"]["serveConfigV2"]) == new_config
    assert {k: v for k, v in after["spec"].items() if k != "serveConfigV2"} == {
        k: v for k, v in before["spec"].items() if k != "serveConfigV2"
    }
    with pytest.raises(KubeRayError, match="404"):
        rs_client.patch_serve_config("other", "applications: []\n")


def test_fake_speaks_create_conflict_and_refuses_unknown_patch_types(fake: FakeKubernetes) -> None:
    custom = k8s.CustomObjectsApi(api_client(fake))
    body = manifests()[-1]
    custom.create_namespaced_custom_object("ray.io", "v1", "llm", "rayservices", body)
    with pytest.raises(k8s.ApiException) as conflict:
        custom.create_namespaced_custom_object("ray.io", "v1", "llm", "rayservices", body)
    assert conflict.value.status == 409
    assert '"reason":"AlreadyExists"' in (conflict.value.body or "").replace(" ", "")
    with pytest.raises(k8s.ApiException) as unsupported:
        custom.patch_namespaced_custom_object(
            "ray.io",
            "v1",
            "llm",
            "rayservices",
            "raygate",
            {"spec": {}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert unsupported.value.status == 415


def test_cli_apply_then_status(
    fake: FakeKubernetes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec_file = tmp_path / "cluster.yaml"
    spec_file.write_text(yaml.safe_dump(cluster().model_dump(mode="json")))
    common = ["--cluster", str(spec_file), "--server", fake.host]
    assert main(["kuberay", "apply", "--config", str(CLUSTER_YAML), *common]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "ServiceAccount/raygate applied",
        "RayService/raygate applied",
    ]
    fake.set_status("llm", "raygate", STATUS)
    assert main(["kuberay", "status", *common]) == 0
    assert "active cluster: raygate-abc12" in capsys.readouterr().out


def test_cli_status_of_a_missing_rayservice_fails(
    fake: FakeKubernetes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec_file = tmp_path / "cluster.yaml"
    spec_file.write_text(yaml.safe_dump(cluster().model_dump(mode="json")))
    assert main(["kuberay", "status", "--cluster", str(spec_file), "--server", fake.host]) == 2
    assert "404" in capsys.readouterr().err
