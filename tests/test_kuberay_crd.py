"""The RayService CRD the kuberay tests validate against, and the validator itself.

The CRD is read from ../shared/kuberay/crds (beside the checkout: the project's machines
and CI), else from the gzipped copy vendored in tests/data/kuberay (Apache-2.0, see its
LICENSE), so validation never skips.
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

from shared_data_rule import shared_data_missing

from kuberay.crd_schema import CrdSchema

REPO = Path(__file__).resolve().parents[1]
SHARED_CRD = REPO.parent / "shared" / "kuberay" / "crds" / "ray.io_rayservices.yaml"
VENDORED_CRD = REPO / "tests" / "data" / "kuberay" / "ray.io_rayservices.yaml.gz"


@functools.cache
def crd() -> CrdSchema:
    return CrdSchema(SHARED_CRD if SHARED_CRD.exists() else VENDORED_CRD)


def test_vendored_crd_is_the_shared_one() -> None:
    if not SHARED_CRD.exists():
        shared_data_missing(f"{SHARED_CRD} is absent: cannot compare the vendored CRD with it")
    assert gzip.decompress(VENDORED_CRD.read_bytes()) == SHARED_CRD.read_bytes()


def test_schema_identifies_the_rayservice_v1() -> None:
    schema = crd()
    assert (schema.api_version, schema.kind, schema.plural) == (
        "ray.io/v1",
        "RayService",
        "rayservices",
    )


def test_validator_applies_defaults_rejects_unknown_fields_and_honours_nullable() -> None:
    schema = crd()
    minimal = {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": "x"},
        "spec": {
            "rayClusterConfig": {
                "headGroupSpec": {"template": {"spec": {"containers": [{"name": "h"}]}}},
                "workerGroupSpecs": [
                    {"groupName": "w", "minReplicas": 0, "maxReplicas": 1, "template": {}}
                ],
            }
        },
    }
    assert schema.errors(minimal) == []
    assert (
        schema.defaulted(minimal)["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["numOfHosts"]
        == 1
    )
    assert "numOfHosts" not in minimal["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    typo = {**minimal, "spec": {**minimal["spec"], "serveConfig": "x"}}
    assert any("serveConfig" in e for e in schema.errors(typo))

    def with_update_time(value: object) -> dict[str, object]:
        status = {"activeServiceStatus": {"rayClusterStatus": {"lastUpdateTime": value}}}
        return {**minimal, "status": status}

    assert schema.errors(with_update_time(None)) == []
    assert any("lastUpdateTime" in e for e in schema.errors(with_update_time(5)))


def test_the_vendored_copy_loads() -> None:
    assert CrdSchema(VENDORED_CRD).kind == "RayService"
