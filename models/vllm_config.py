"""A vLLM model spec rendered to Ray Serve LLM's ``LLMConfig``.

``llm_config_kwargs`` is a plain dict (testable on CPU); ``build_vllm_deployment`` imports
``ray.serve.llm`` only when called, since that needs the ``gpu`` extra (``ray[llm]``, vLLM).
Field names follow ``ray/llm/_internal/serve/core/configs/llm_config.py`` in Ray 2.60.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from models.spec import AcceleratorKind, ModelSpec

__all__ = [
    "RAY_ACCELERATOR_TYPES",
    "VLLMUnavailableError",
    "build_vllm_deployment",
    "llm_config_kwargs",
    "model_source",
]

# GKE accelerator name -> Ray accelerator type (ray.util.accelerators). Ray detects
# "A100" for both A100 sizes; the sized names must be declared as node resources
# (the KubeRay renderer does so for every GPU worker group).
RAY_ACCELERATOR_TYPES: Mapping[AcceleratorKind, str] = {
    "nvidia-tesla-t4": "T4",
    "nvidia-l4": "L4",
    "nvidia-tesla-a100": "A100-40G",
    "nvidia-a100-80gb": "A100-80G",
    "nvidia-h100-80gb": "H100",
    "nvidia-h100-mega-80gb": "H100",
    "nvidia-h200-141gb": "H200",
    "nvidia-b200": "B200",
}


class VLLMUnavailableError(RuntimeError):
    """``ray.serve.llm`` cannot be imported: the ``gpu`` extra is not installed."""


def model_source(source: str) -> str | dict[str, str]:
    """``hf:org/name`` -> ``org/name``; ``gs://``/``s3://`` -> a cloud mirror; else a path."""
    if source.startswith("hf:"):
        return source[3:]
    if source.startswith(("gs://", "s3://")):
        return {"bucket_uri": source}
    return source


def llm_config_kwargs(spec: ModelSpec) -> dict[str, Any]:
    """The keyword arguments of ``ray.serve.llm.LLMConfig`` for a vLLM spec."""
    backend = spec.vllm_backend()
    accelerator = backend.accelerator
    engine_kwargs: dict[str, Any] = {
        "tensor_parallel_size": accelerator.tensor_parallel_size,
        "enable_prefix_caching": True,
    }
    if accelerator.pipeline_parallel_size > 1:
        engine_kwargs["pipeline_parallel_size"] = accelerator.pipeline_parallel_size
    if backend.max_model_len is not None:
        engine_kwargs["max_model_len"] = backend.max_model_len
    if backend.lora_adapters:
        engine_kwargs["enable_lora"] = True
        engine_kwargs["max_loras"] = len(backend.lora_adapters)
    engine_kwargs.update(backend.engine_options)

    auto = spec.autoscaling
    kwargs: dict[str, Any] = {
        "model_loading_config": {
            "model_id": spec.name,
            "model_source": model_source(backend.source),
        },
        "accelerator_type": RAY_ACCELERATOR_TYPES[accelerator.type],
        "engine_kwargs": engine_kwargs,
        "deployment_config": {
            # Ray Serve LLM's default target_ongoing_requests (1e9) never scales.
            "autoscaling_config": {
                "min_replicas": auto.min_replicas,
                "max_replicas": auto.max_replicas,
                "target_ongoing_requests": auto.target_ongoing_requests,
            },
            "max_ongoing_requests": spec.max_ongoing_requests,
            "max_surge_percent": spec.max_surge_percent,
        },
        # The default 50 ms stream batching adds that much to every token's latency.
        "experimental_configs": {"stream_batching_interval_ms": 0},
    }
    if backend.lora_adapters:
        kwargs["lora_config"] = {
            "dynamic_lora_loading_path": posixpath.dirname(
                backend.lora_adapters[0].source.rstrip("/")
            ),
            "max_num_adapters_per_replica": len(backend.lora_adapters),
        }
    return kwargs


def build_vllm_deployment(spec: ModelSpec) -> Any:
    """A Ray Serve application (``LLMServer`` deployment) serving ``spec`` on vLLM."""
    try:
        from ray.serve.llm import LLMConfig, build_llm_deployment
    except ImportError as exc:
        raise VLLMUnavailableError(
            f"model {spec.name!r} runs on vLLM, which needs the 'gpu' extra "
            "(pip install 'raygate[gpu]', i.e. ray[llm] with vLLM) on the GPU nodes' image: "
            f"{exc}"
        ) from exc
    return build_llm_deployment(LLMConfig(**llm_config_kwargs(spec)))
