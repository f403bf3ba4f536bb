"""The local Serve redeployer's pure parts: which apps a declarative redeploy sends, and
how Serve's instance details read as an application status. The imperative path runs for
real in test_notebook.py."""

from __future__ import annotations

from enum import Enum
from typing import Any

import pytest

from serve.models_admin.serve_redeployer import ServeRedeployer, declarative_config


class APIType(str, Enum):  # noqa: UP042  (Serve's details carry enums like this one)
    DECLARATIVE = "declarative"
    IMPERATIVE = "imperative"


def app(name: str, source: Any, args: dict[str, Any] | None = None) -> dict[str, Any]:
    config = {"name": name, "import_path": f"{name}:app", "route_prefix": f"/{name}"}
    if args is not None:
        config["args"] = args
    return {"source": source, "deployed_app_config": config, "status": "RUNNING"}


CASES = [
    (
        "every declarative app is kept, only raygate's args change",
        {
            "applications": {
                "raygate": app("raygate", APIType.DECLARATIVE, {"old": 1}),
                "other": app("other", "declarative", {"x": 1}),
                "imperative-one": app("imperative-one", APIType.IMPERATIVE),
            },
            "target_capacity": 50,
        },
        {
            "applications": [
                {
                    "name": "other",
                    "import_path": "other:app",
                    "route_prefix": "/other",
                    "args": {"x": 1},
                },
                {
                    "name": "raygate",
                    "import_path": "raygate:app",
                    "route_prefix": "/raygate",
                    "args": {"new": 2},
                },
            ],
            "target_capacity": 50,
        },
    ),
    (
        "raygate alone",
        {"applications": {"raygate": app("raygate", "declarative")}, "target_capacity": None},
        {
            "applications": [
                {
                    "name": "raygate",
                    "import_path": "raygate:app",
                    "route_prefix": "/raygate",
                    "args": {"new": 2},
                }
            ]
        },
    ),
]


@pytest.mark.parametrize(("case", "details", "expected"), CASES)
def test_declarative_config(case: str, details: dict[str, Any], expected: dict[str, Any]) -> None:
    assert declarative_config(details, "raygate", {"new": 2}) == expected, case


def test_declarative_config_refuses_an_app_that_is_not_declarative() -> None:
    details = {"applications": {"raygate": app("raygate", APIType.IMPERATIVE)}}
    with pytest.raises(RuntimeError, match="not deployed declaratively"):
        declarative_config(details, "raygate", {})


def test_status_reads_enum_values_not_their_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    class Status(str, Enum):  # noqa: UP042  (as ray.serve.schema.ApplicationStatus)
        RUNNING = "RUNNING"
        HEALTHY = "HEALTHY"

    details = {
        "applications": {
            "raygate": {
                "status": Status.RUNNING,
                "message": "",
                "deployments": {"ingress": {"status": Status.HEALTHY}},
            }
        }
    }
    redeployer = ServeRedeployer("raygate")
    monkeypatch.setattr(redeployer, "_details", lambda: details)
    status = redeployer._status()
    assert (status.status, dict(status.deployments)) == ("RUNNING", {"ingress": "HEALTHY"})
    monkeypatch.setattr(ServeRedeployer, "_details", lambda self: details)
    assert ServeRedeployer("absent")._status().status == "NOT_STARTED"


async def test_outside_ray_it_refuses_instead_of_starting_a_ray_cluster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Serve's client calls ``ray.init()`` when the process has no Ray connection: a status
    read from a gateway running outside Ray (a unit test, a plain ASGI server) must not
    start a local cluster. (This process may hold the e2e session's Ray: it is hidden.)"""
    import ray

    def no_init(*args: object, **kwargs: object) -> None:
        raise AssertionError("ray.init was called")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", no_init)
    redeployer = ServeRedeployer("raygate")
    with pytest.raises(RuntimeError, match="not running on Ray Serve"):
        await redeployer.status()
    with pytest.raises(RuntimeError, match="not running on Ray Serve"):
        await redeployer.redeploy({"teams": [], "models": []})
