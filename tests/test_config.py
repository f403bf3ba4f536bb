"""The platform config: shipped files are valid, errors name the file and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from serve.config import load_serve_file, parse_platform_config
from serve.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["serve/configs/local.yaml", "serve/configs/cluster.yaml", "bench/raygate.yaml"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_are_valid_serve_deploy_configs(name: str) -> None:
    raw = yaml.safe_load((ROOT / name).read_text())
    ServeDeploySchema.model_validate(raw)
    serve_file = load_serve_file(ROOT / name)
    assert serve_file.platform.models


def test_local_default_is_loopback_memory_sqlite() -> None:
    serve_file = load_serve_file(ROOT / "serve/configs/local.yaml")
    assert serve_file.http_host == "127.0.0.1" and serve_file.http_port == 8000
    platform = serve_file.platform
    assert platform.state.backend == "memory"
    assert platform.database.url.startswith("sqlite+aiosqlite:///")
    assert {m.name for m in platform.models} == {"smollm2-135m-instruct", "all-minilm-l6-v2"}


def test_local_default_fits_a_two_core_laptop_through_a_rollout_and_a_notebook_model() -> None:
    """Ray counts 2 CPUs on a 2-core laptop. The default's reservations, plus the model the
    notebook adds (0.25), must leave room for the largest single surge replica of a
    rolling update (`max_surge_percent`), or a model change would wait forever."""
    platform = load_serve_file(ROOT / "serve/configs/local.yaml").platform
    reserved = [platform.ingress.num_cpus * platform.ingress.num_replicas] + [
        m.deployment.num_cpus * m.deployment.num_replicas
        for m in platform.models
        if not m.in_process
    ]
    surge = max([platform.ingress.num_cpus] + [m.deployment.num_cpus for m in platform.models])
    assert sum(reserved) + 0.25 + surge <= 2, (reserved, surge)


def base() -> dict[str, Any]:
    return {
        "teams": [{"name": "dev"}],
        "keys": [{"team": "dev", "name": "dev", "key": "env:RAYGATE_DEV_KEY"}],
        "models": [{"name": "m1", "backend": {"kind": "llama_cpp"}}],
    }


def with_(path: str, value: Any) -> dict[str, Any]:
    config = base()
    node: Any = config
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    node[parts[-1]] = value
    return config


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (with_("keys.0.key", "sk-plaintext-secret"), "keys[0].key"),
        (with_("models.0.backend.kind", "tensorflow"), "models[0].backend"),
        (with_("models.0.surprise", 1), "models[0].surprise: Extra inputs are not permitted"),
        (with_("state.backend", "redis"), "state.url is required"),
        (with_("ingress.num_replicas", 2), "state.backend 'memory'"),
        (with_("keys.0.team", "ghosts"), "unknown team 'ghosts'"),
        (with_("teams.0.models", ["nope"]), "unknown model 'nope'"),
        (with_("models.0.aliases", ["m1"]), "defined twice"),
        (with_("database.url", "mysql://x"), "database.url must start with"),
        (
            with_(
                "models.0.backend",
                {"kind": "openai_compatible", "base_url": "http://x", "model": "y", "api_key": "k"},
            ),
            "models[0].backend.api_key",
        ),
    ],
)
def test_invalid_configs_name_the_field(config: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_platform_config(config, "where.yaml")
    assert "where.yaml" in str(info.value)
    assert expected in str(info.value)


def test_file_errors_name_the_file_and_application(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    raw = {
        "applications": [
            {
                "name": "raygate",
                "import_path": "serve.app:build_app",
                "args": with_("state.backend", "disk"),
            }
        ]
    }
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as info:
        load_serve_file(path)
    assert f"{path}: applications[0].args.state.backend" in str(info.value)


def test_config_is_frozen() -> None:
    config = parse_platform_config(base())
    with pytest.raises(ValueError):
        config.models[0].name = "other"  # type: ignore[misc]


def test_secret_resolution_reads_only_references(monkeypatch: pytest.MonkeyPatch) -> None:
    from serve.settings import resolve_optional, resolve_secret

    monkeypatch.setenv("RG_TEST_SECRET", "s3cret")
    assert resolve_secret("env:RG_TEST_SECRET") == "s3cret"
    assert resolve_optional("http://plain") == "http://plain"
    with pytest.raises(ConfigError):
        resolve_secret("s3cret")
    monkeypatch.delenv("RG_TEST_SECRET")
    with pytest.raises(ConfigError, match="not set"):
        resolve_secret("env:RG_TEST_SECRET")
