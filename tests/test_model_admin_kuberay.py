"""The KubeRay redeployer against the loopback Kubernetes API: only serveConfigV2 changes,
only raygate's args in it, and status is the operator's."""

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
from test_kuberay_client import RS, STATUS
from test_kuberay_crd import crd

from kuberay.client import KubeRayError, RayServiceClient
from serve.models_admin.kuberay_redeployer import KubeRayRedeployer, with_platform_args

OTHER_APP = {"name": "other", "import_path": "other.app:app", "route_prefix": "/other"}
SERVE_CONFIG = {
    "proxy_location": "HeadOnly",
    "applications": [
        {
            "name": "raygate",
            "import_path": "serve.app:build_app",
            "route_prefix": "/",
            "args": {"teams": [{"name": "dev"}], "models": []},
        },
        OTHER_APP,
    ],
}


def rayservice() -> dict[str, Any]:
    """A minimal valid RayService (the fake validates it against the CRD)."""
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": "raygate", "namespace": "llm"},
        "spec": {
            "serveConfigV2": yaml.safe_dump(SERVE_CONFIG, sort_keys=False),
            "rayClusterConfig": {
                "headGroupSpec": {
                    "rayStartParams": {},
                    "template": {
                        "spec": {"containers": [{"name": "ray-head", "image": "raygate:1"}]}
                    },
                }
            },
        },
    }


@pytest.fixture
def fake() -> Iterator[FakeKubernetes]:
    server = FakeKubernetes(crd())
    server.start()
    yield server
    server.stop()


def rs_client(fake: FakeKubernetes) -> RayServiceClient:
    return RayServiceClient(k8s.ApiClient(k8s.Configuration(host=fake.host)), "llm")


def deployed(fake: FakeKubernetes) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(fake.get(*RS)["spec"]["serveConfigV2"])
    return config


async def test_redeploy_patches_only_the_raygate_args(fake: FakeKubernetes) -> None:
    client = rs_client(fake)
    client.apply([rayservice()])
    serve_config = deployed(fake)
    before = fake.get(*RS)
    new_args = {**serve_config["applications"][0]["args"], "teams": [{"name": "nb"}]}

    await KubeRayRedeployer(client, "raygate").redeploy(new_args)

    after = fake.get(*RS)
    assert fake.calls[-1].content_type == "application/merge-patch+json"
    config = deployed(fake)
    assert config["applications"][0]["args"] == new_args
    assert config["applications"][1] == OTHER_APP
    assert {k: v for k, v in config.items() if k != "applications"} == {
        k: v for k, v in serve_config.items() if k != "applications"
    }
    assert {k: v for k, v in after["spec"].items() if k != "serveConfigV2"} == {
        k: v for k, v in before["spec"].items() if k != "serveConfigV2"
    }


async def test_status_is_the_operators_and_an_upgrade_reads_as_deploying(
    fake: FakeKubernetes,
) -> None:
    client = rs_client(fake)
    client.apply([rayservice()])
    redeployer = KubeRayRedeployer(client, "raygate")
    assert (await redeployer.status()).status == "NOT_STARTED"
    fake.set_status("llm", "raygate", STATUS)
    status = await redeployer.status()
    assert status.status == "RUNNING"
    assert status.deployments["model-qwen2.5-7b-instruct"] == "UPDATING"
    upgrading = {
        **STATUS,
        "conditions": [
            {**c, "status": "True"} if c["type"] == "UpgradeInProgress" else c
            for c in STATUS["conditions"]  # type: ignore[attr-defined]
        ],
    }
    fake.set_status("llm", "raygate", upgrading)
    assert (await redeployer.status()).status == "DEPLOYING"


async def test_a_missing_rayservice_is_an_error(fake: FakeKubernetes) -> None:
    with pytest.raises(RuntimeError, match="does not exist"):
        await KubeRayRedeployer(rs_client(fake), "raygate").redeploy({})
    with pytest.raises(KubeRayError, match="404"):
        await KubeRayRedeployer(rs_client(fake), "raygate").status()


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"applications": [OTHER_APP]}, "no application named 'raygate'"),
        ({"applications": [{"name": "raygate"}, {"name": "raygate"}]}, "no application"),
        ({}, "no application"),
    ],
)
def test_with_platform_args_needs_exactly_one_raygate_app(
    config: dict[str, Any], error: str
) -> None:
    with pytest.raises(RuntimeError, match=error):
        with_platform_args(config, "raygate", {"teams": []})


def test_with_platform_args_keeps_everything_else() -> None:
    config = {
        "http_options": {"port": 8000},
        "applications": [{"name": "raygate", "args": {"a": 1}, "route_prefix": "/"}, OTHER_APP],
    }
    out = with_platform_args(config, "raygate", {"b": 2})
    assert out == {
        "http_options": {"port": 8000},
        "applications": [{"name": "raygate", "args": {"b": 2}, "route_prefix": "/"}, OTHER_APP],
    }
    assert config["applications"][0]["args"] == {"a": 1}  # type: ignore[index]


class InterleavedClient(RayServiceClient):
    """Someone else (kubectl, GitOps) writes the RayService right after each of our first
    ``writes`` reads: our patch is then based on a stale read."""

    def __init__(self, fake: FakeKubernetes, writes: int) -> None:
        super().__init__(k8s.ApiClient(k8s.Configuration(host=fake.host)), "llm")
        self._other = rs_client(fake)
        self.writes = writes
        self.reads = 0

    def get(self, name: str) -> dict[str, Any] | None:
        obj = super().get(name)
        self.reads += 1
        if self.reads <= self.writes:
            config = yaml.safe_load(obj["spec"]["serveConfigV2"]) if obj else {}
            config["applications"][1] = {**OTHER_APP, "route_prefix": f"/other-{self.reads}"}
            self._other.patch_serve_config(name, config)
        return obj


async def test_a_concurrent_write_to_the_rayservice_is_kept_and_ours_reapplied(
    fake: FakeKubernetes,
) -> None:
    rs_client(fake).apply([rayservice()])
    client = InterleavedClient(fake, writes=1)
    new_args = {"teams": [{"name": "nb"}], "models": []}

    await KubeRayRedeployer(client, "raygate").redeploy(new_args)

    patches = [c for c in fake.calls if c.content_type == "application/merge-patch+json"]
    assert len(patches) == 3  # theirs, ours (409: stale resourceVersion), ours on a fresh read
    config = deployed(fake)
    assert config["applications"][0]["args"] == new_args
    assert config["applications"][1]["route_prefix"] == "/other-1"  # their write survived


async def test_a_rayservice_that_keeps_changing_is_an_error_not_an_overwrite(
    fake: FakeKubernetes,
) -> None:
    rs_client(fake).apply([rayservice()])
    client = InterleavedClient(fake, writes=10)
    with pytest.raises(KubeRayError, match="409"):
        await KubeRayRedeployer(client, "raygate").redeploy({"teams": [], "models": []})
    config = deployed(fake)
    assert config["applications"][0]["args"] == SERVE_CONFIG["applications"][0]["args"]  # type: ignore[index]
