"""The Serve graph refuses a `vllm` model clearly when the `gpu` extra is not installed
(the CPU install never has it)."""

from __future__ import annotations

import importlib.util

import pytest

from models.spec import load_specs
from models.vllm_config import VLLMUnavailableError
from serve.app import build_graph
from serve.config import parse_platform_config


def test_a_vllm_model_without_the_gpu_extra_names_the_extra() -> None:
    assert importlib.util.find_spec("vllm") is None, "this test is for the CPU install"
    spec = next(s for s in load_specs() if s.engine == "vllm")
    named = {spec.tenancy.owner_team, *spec.tenancy.weights} if spec.tenancy else set()
    teams = [{"name": team} for team in sorted(named)]
    config = parse_platform_config({"teams": teams, "models": [spec.platform_model()]})
    with pytest.raises(VLLMUnavailableError, match="'gpu' extra"):
        build_graph(config)
