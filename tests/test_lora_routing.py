"""LoRA adapters of a vLLM model are public models of their own, ``<model>:<adapter>``:
the plan sends them to the base model's replicas with the adapter in the model id (no
fallbacks), teams allowed the model may use them, /v1/models lists them, and the handle
carries the id as Ray Serve's multiplexed model id (checked on real Ray Serve)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fake_upstream import FakeUpstream

from models.engines.openai_compatible import OpenAICompatibleEngine
from models.spec import load_specs
from serve.auth.authenticator import Principal
from serve.bootstrap import build_gateway
from serve.config import parse_platform_config
from serve.errors import NotFound, PermissionDenied
from serve.gateway import Gateway

ADAPTERS = [
    {"name": "legal", "source": "gs://raygate-models/qwen-loras/legal"},
    {"name": "support", "source": "gs://raygate-models/qwen-loras/support"},
]


@pytest.fixture
async def gateway(upstream: FakeUpstream, tmp_path: Path) -> AsyncIterator[Gateway]:
    spec = next(s for s in load_specs() if s.engine == "vllm")
    model = spec.platform_model()
    model["backend"]["lora_adapters"] = ADAPTERS
    teams = {spec.tenancy.owner_team, *spec.tenancy.weights} if spec.tenancy else set()
    config = parse_platform_config(
        {
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path}/lora.db"},
            "teams": [{"name": t} for t in sorted(teams)] + [{"name": "other", "models": []}],
            "models": [model],
        }
    )
    # The model's replicas are a Serve deployment in production; any engine stands in for
    # planning (nothing is called here).
    engine = OpenAICompatibleEngine(spec.name, upstream.base_url, "fake")
    made = await build_gateway(config, {spec.name: engine})
    yield made
    await made.aclose()


def principal(team: str) -> Principal:
    return Principal(team=team, key_id=None, subject=None, models=None)


def base_name(gateway: Gateway) -> str:
    return next(m.name for m in gateway.config.models if m.backend.kind == "vllm")


async def test_an_adapter_is_planned_on_its_base_model_with_the_adapter_id(
    gateway: Gateway,
) -> None:
    base = base_name(gateway)
    plan = gateway.plan(principal("platform"), f"{base}:legal", "chat")
    assert plan.models == (base,)  # no fallbacks for an adapter
    assert plan.upstream(base) == f"{base}:legal"
    assert plan.cache_name == f"{base}:legal"  # cached apart from the base model
    plain = gateway.plan(principal("platform"), base, "chat")
    assert plain.upstream(base) == base


@pytest.mark.parametrize(
    ("team", "suffix", "error"),
    [("platform", ":unknown", NotFound), ("other", ":legal", PermissionDenied)],
)
async def test_unknown_adapters_and_other_teams_are_refused(
    gateway: Gateway, team: str, suffix: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        gateway.plan(principal(team), base_name(gateway) + suffix, "chat")


async def test_adapters_are_listed_as_models(gateway: Gateway) -> None:
    ids = [m["id"] for m in gateway.visible_models(principal("platform"))]
    base = base_name(gateway)
    assert f"{base}:legal" in ids and f"{base}:support" in ids


class MuxProbe:
    """Answers with the multiplexed model id its request carried."""

    async def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        from ray import serve

        return {"choices": [{"message": {"content": serve.get_multiplexed_model_id()}}]}

    async def chat_stream(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        from ray import serve

        yield {"choices": [{"delta": {"content": serve.get_multiplexed_model_id()}}]}


@pytest.mark.integration
async def test_the_handle_carries_the_adapter_as_the_multiplexed_model_id(
    platform: Any,
) -> None:
    import ray.cloudpickle
    from ray import serve

    from serve.remote_engine import RemoteEngine

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers can't import tests/
    app = serve.deployment(name="mux-probe", ray_actor_options={"num_cpus": 0})(MuxProbe).bind()
    handle = serve.run(app, name="mux-probe", route_prefix="/mux-probe")
    try:
        engine = RemoteEngine(handle)
        adapter = await engine.chat({"model": "qwen:legal", "messages": []})
        plain = await engine.chat({"model": "qwen", "messages": []})
        streamed = [c async for c in engine.chat_stream({"model": "qwen:support"})]
    finally:
        serve.delete("mux-probe")
    assert adapter["choices"][0]["message"]["content"] == "qwen:legal"
    assert plain["choices"][0]["message"]["content"] == ""
    assert streamed[0]["choices"][0]["delta"]["content"] == "qwen:support"
