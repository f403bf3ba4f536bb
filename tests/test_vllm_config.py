"""Rendering a vLLM spec to Ray Serve LLM's LLMConfig, checked against Ray 2.60's own model.

`ray.serve.llm` needs vLLM, but the pydantic `LLMConfig` it re-exports lives in an
internal module that imports on CPU; its `extra="forbid"` pins every field name we use.
"""

from __future__ import annotations

import builtins
from typing import Any

import pytest
import ray.util.accelerators.accelerators as ray_accelerators

from models.spec import AcceleratorKind, ModelSpec, load_specs
from models.vllm_config import (
    RAY_ACCELERATOR_TYPES,
    VLLMUnavailableError,
    build_vllm_deployment,
    llm_config_kwargs,
)

BASE: dict[str, Any] = {
    "name": "qwen",
    "source": "hf:Qwen/Qwen2.5-7B-Instruct",
    "engine": "vllm",
    "accelerator": {"type": "nvidia-l4"},
    "autoscaling": {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 8},
    "max_ongoing_requests": 24,
}


def render(**overrides: Any) -> dict[str, Any]:
    return llm_config_kwargs(ModelSpec.model_validate({**BASE, **overrides}))


def ray_llm_config() -> Any:
    from ray.llm._internal.serve.core.configs.llm_config import LLMConfig

    return LLMConfig


def test_every_accelerator_kind_maps_to_a_ray_accelerator_type() -> None:
    ray_values = {v for k, v in vars(ray_accelerators).items() if k.isupper()}
    kinds = set(AcceleratorKind.__args__)
    assert set(RAY_ACCELERATOR_TYPES) == kinds
    assert set(RAY_ACCELERATOR_TYPES.values()) <= ray_values
    assert (RAY_ACCELERATOR_TYPES["nvidia-l4"], RAY_ACCELERATOR_TYPES["nvidia-h100-80gb"]) == (
        ray_accelerators.NVIDIA_L4,
        ray_accelerators.NVIDIA_H100,
    )
    assert RAY_ACCELERATOR_TYPES["nvidia-a100-80gb"] == ray_accelerators.NVIDIA_A100_80G


@pytest.mark.parametrize(
    ("overrides", "path", "expected"),
    [
        (
            {},
            ("model_loading_config",),
            {"model_id": "qwen", "model_source": "Qwen/Qwen2.5-7B-Instruct"},
        ),
        (
            {"source": "gs://weights/qwen"},
            ("model_loading_config", "model_source"),
            {"bucket_uri": "gs://weights/qwen"},
        ),
        (
            {"source": "s3://weights/qwen"},
            ("model_loading_config", "model_source"),
            {"bucket_uri": "s3://weights/qwen"},
        ),
        ({"source": "/models/qwen"}, ("model_loading_config", "model_source"), "/models/qwen"),
        ({}, ("accelerator_type",), "L4"),
        ({"accelerator": {"type": "nvidia-a100-80gb"}}, ("accelerator_type",), "A100-80G"),
        ({}, ("engine_kwargs",), {"tensor_parallel_size": 1, "enable_prefix_caching": True}),
        (
            {"accelerator": {"type": "nvidia-h100-80gb", "count": 8, "tensor_parallel": 4}},
            ("engine_kwargs",),
            {"tensor_parallel_size": 4, "pipeline_parallel_size": 2, "enable_prefix_caching": True},
        ),
        ({"max_model_len": 8192}, ("engine_kwargs", "max_model_len"), 8192),
        (
            {"engine_options": {"enable_prefix_caching": False, "dtype": "half"}},
            ("engine_kwargs",),
            {"tensor_parallel_size": 1, "enable_prefix_caching": False, "dtype": "half"},
        ),
        (
            {},
            ("deployment_config",),
            {
                "autoscaling_config": {
                    "min_replicas": 1,
                    "max_replicas": 4,
                    "target_ongoing_requests": 8,
                },
                "max_ongoing_requests": 24,
                "max_surge_percent": 100,  # replacements start before old replicas stop
            },
        ),
        ({"max_surge_percent": 0}, ("deployment_config", "max_surge_percent"), 0),
        ({}, ("experimental_configs",), {"stream_batching_interval_ms": 0}),
        (
            {
                "lora_adapters": [
                    {"name": "legal", "source": "gs://b/adapters/legal"},
                    {"name": "sql", "source": "gs://b/adapters/sql/"},
                ]
            },
            ("lora_config",),
            {"dynamic_lora_loading_path": "gs://b/adapters", "max_num_adapters_per_replica": 2},
        ),
    ],
)
def test_rendering(overrides: dict[str, Any], path: tuple[str, ...], expected: Any) -> None:
    node: Any = render(**overrides)
    for key in path:
        node = node[key]
    assert node == expected


def test_lora_enables_the_engine_and_no_adapters_means_no_lora_config() -> None:
    assert "lora_config" not in render()
    with_lora = render(lora_adapters=[{"name": "a", "source": "s3://b/l/a"}])
    assert with_lora["engine_kwargs"]["enable_lora"] is True
    assert with_lora["engine_kwargs"]["max_loras"] == 1


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"source": "gs://weights/qwen", "max_model_len": 4096},
        {"accelerator": {"type": "nvidia-h100-80gb", "count": 2}},
        {"lora_adapters": [{"name": "a", "source": "gs://b/l/a"}]},
    ],
)
def test_rendered_kwargs_validate_as_ray_llm_config(overrides: dict[str, Any]) -> None:
    config = ray_llm_config()(**render(**overrides))
    assert config.model_id == "qwen"
    assert config.deployment_config["max_surge_percent"] == 100
    assert config.deployment_config["autoscaling_config"]["target_ongoing_requests"] == 8
    assert config.experimental_configs["stream_batching_interval_ms"] == 0


def test_shipped_gpu_spec_validates_as_ray_llm_config() -> None:
    for spec in load_specs():
        if spec.engine == "vllm":
            assert ray_llm_config()(**llm_config_kwargs(spec)).model_id == spec.name


def test_ray_field_names_we_rely_on_exist() -> None:
    llm_config = ray_llm_config()
    fields = set(llm_config.model_fields)
    assert {
        "model_loading_config",
        "accelerator_type",
        "engine_kwargs",
        "lora_config",
        "deployment_config",
        "experimental_configs",
    } <= fields
    from ray.llm._internal.serve.core.configs.llm_config import LoraConfig, ModelLoadingConfig

    assert {"model_id", "model_source"} <= set(ModelLoadingConfig.model_fields)
    assert {"dynamic_lora_loading_path", "max_num_adapters_per_replica"} <= set(
        LoraConfig.model_fields
    )


def test_llama_cpp_specs_do_not_render() -> None:
    cpu = ModelSpec(name="s", source="/m.gguf", engine="llama_cpp")
    with pytest.raises(ValueError, match="does not run on vLLM"):
        llm_config_kwargs(cpu)


def test_build_without_the_gpu_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_vllm(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "ray.serve.llm":
            raise ImportError("Neither vLLM nor SGLang is installed")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_vllm)
    with pytest.raises(
        VLLMUnavailableError, match=r"'qwen' runs on vLLM, which needs the 'gpu' extra"
    ):
        build_vllm_deployment(ModelSpec.model_validate(BASE))


def test_max_surge_percent_is_a_serve_option_ray_llm_validates() -> None:
    """Ray Serve LLM ignores deployment_config keys it does not know; it range-checks
    the ones it does, so an out-of-range surge being refused shows the key is read."""
    kwargs = render()
    kwargs["deployment_config"] = {**kwargs["deployment_config"], "max_surge_percent": 101}
    with pytest.raises(ValueError, match="max_surge_percent"):
        ray_llm_config()(**kwargs)


async def test_ray_serve_llm_loads_each_adapter_from_its_own_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The contract with Ray Serve LLM's LoRA loader: the id the ingress sends for an
    adapter (``<model>:<adapter>``, `serve.model_access.Plan.upstream`) resolves, through Ray's
    own functions, to the adapter's ``source`` folder on the rendered LLMConfig."""
    from ray.llm._internal.common.utils.lora_utils import get_base_model_id
    from ray.llm._internal.serve.utils import lora_serve_utils

    asked: list[str] = []

    async def context_length(bucket_uri: str) -> None:  # the only call that would hit GCS
        asked.append(bucket_uri)
        return None

    monkeypatch.setattr(lora_serve_utils, "get_lora_finetuned_context_length", context_length)
    adapters = [
        {"name": "legal", "source": "gs://b/adapters/legal"},
        {"name": "sql", "source": "gs://b/adapters/sql/"},
    ]
    config = ray_llm_config()(**render(lora_adapters=adapters))
    assert config.multiplex_config() is not None
    for adapter in adapters:
        model_id = f"{config.model_id}:{adapter['name']}"
        mirror = await lora_serve_utils.get_lora_mirror_config(model_id, config)
        assert mirror.bucket_uri == adapter["source"].rstrip("/")
        assert get_base_model_id(model_id) == config.model_id
    assert asked == [a["source"].rstrip("/") for a in adapters]
