"""The Serve options `serve.app` gives each deployment from the platform config."""

from __future__ import annotations

from typing import Any

import pytest

from serve.app import ingress_deployment_options, model_deployment_options
from serve.config import parse_platform_config

LLAMA = {"name": "small", "backend": {"kind": "llama_cpp"}}


def config(model: dict[str, Any], ingress: dict[str, Any] | None = None) -> Any:
    return parse_platform_config(
        {"teams": [{"name": "dev"}], "models": [model], "ingress": ingress or {}}
    )


@pytest.mark.parametrize(
    ("deployment", "expected"),
    [
        ({}, {"name": "model-small", "num_replicas": 1, "max_surge_percent": 100}),
        ({"max_surge_percent": 0}, {"max_surge_percent": 0}),
        ({"num_cpus": 0.25}, {"ray_actor_options": {"num_cpus": 0.25}}),
        (
            {"autoscaling": {"min_replicas": 1, "max_replicas": 3}},
            {"autoscaling_config": {"min_replicas": 1, "max_replicas": 3}},
        ),
    ],
)
def test_model_deployment_options(deployment: dict[str, Any], expected: dict[str, Any]) -> None:
    options = model_deployment_options(config({**LLAMA, "deployment": deployment}).models[0])
    for key, value in expected.items():
        if isinstance(value, dict):
            assert value.items() <= options[key].items(), (key, options[key])
        else:
            assert options[key] == value, key
    assert ("num_replicas" in options) != ("autoscaling_config" in options)


@pytest.mark.parametrize(("ingress", "surge"), [({}, 100), ({"max_surge_percent": 25}, 25)])
def test_ingress_replacements_start_before_old_replicas_stop(
    ingress: dict[str, Any], surge: int
) -> None:
    assert ingress_deployment_options(config(LLAMA, ingress))["max_surge_percent"] == surge


def test_a_surge_over_100_percent_is_refused_at_load() -> None:
    from serve.errors import ConfigError

    with pytest.raises(ConfigError, match="max_surge_percent"):
        config({**LLAMA, "deployment": {"max_surge_percent": 150}})
