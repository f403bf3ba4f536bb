"""Builds the raygate Serve application from the platform config.

This is the ``import_path`` for ``serve run`` and ``serve deploy``
(``serve.app:build_app``); the application's ``args`` are the platform config.
Nothing runs at import time.
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from models.vllm_config import VLLMUnavailableError
from serve.config import DeploymentConfig, ModelConfig, PlatformConfig, parse_platform_config


def model_deployment_options(model: ModelConfig) -> dict[str, Any]:
    return model_deployment_options_for(f"model-{model.name}", model.deployment)


def model_deployment_options_for(name: str, spec: DeploymentConfig) -> dict[str, Any]:
    options: dict[str, Any] = {
        "name": name,
        "max_ongoing_requests": spec.max_ongoing_requests,
        "max_queued_requests": spec.max_queued_requests,
        "ray_actor_options": {"num_cpus": spec.num_cpus},
        "health_check_period_s": 10,
        "max_surge_percent": spec.max_surge_percent,
    }
    if spec.autoscaling is not None:
        auto = spec.autoscaling
        options["autoscaling_config"] = {
            "min_replicas": auto.min_replicas,
            "max_replicas": auto.max_replicas,
            "target_ongoing_requests": auto.target_ongoing_requests,
            "upscale_delay_s": auto.upscale_delay_s,
            "downscale_delay_s": auto.downscale_delay_s,
        }
    else:
        options["num_replicas"] = spec.num_replicas
    return options


def ingress_deployment_options(config: PlatformConfig) -> dict[str, Any]:
    ingress = config.ingress
    return {
        "name": "ingress",
        "num_replicas": ingress.num_replicas,
        # Serve's own limit sits above the gateway's, so overload is answered by the
        # gateway as an OpenAI 503 rather than by Serve's plain-text one.
        "max_ongoing_requests": ingress.max_ongoing_requests + 16,
        "ray_actor_options": {"num_cpus": ingress.num_cpus},
        "max_surge_percent": ingress.max_surge_percent,
    }


def ner_deployment_options(config: PlatformConfig) -> dict[str, Any]:
    return {**model_deployment_options_for("guardrails-ner", config.guardrails.ner.deployment)}


def build_graph(config: PlatformConfig) -> Application:
    from deployments.ingress import Ingress
    from deployments.model import ModelDeployment

    handles = {
        model.name: (
            vllm_model_application(model)
            if model.backend.kind == "vllm"
            else serve.deployment(**model_deployment_options(model))(ModelDeployment).bind(
                model.model_dump(mode="json")
            )
        )
        for model in config.models
        if not model.in_process
    }
    guard = config.guardrails
    if guard.enabled and guard.ner.enabled:
        from deployments.guardrails_ner import NerDeployment

        handles[NER_HANDLE] = serve.deployment(**ner_deployment_options(config))(
            NerDeployment
        ).bind()
    ingress = serve.deployment(**ingress_deployment_options(config))(Ingress)
    app: Application = ingress.bind(config.model_dump(mode="json"), handles)
    return app


def vllm_model_application(model: ModelConfig) -> Application:
    """Ray Serve LLM's LLMServer deployment for a ``vllm`` model; ``ray.serve.llm`` (the
    ``gpu`` extra) is imported only when such a model is configured."""
    try:
        from deployments.vllm_model import vllm_application
    except ImportError as exc:
        raise VLLMUnavailableError(
            f"model {model.name!r} runs on vLLM, which needs the 'gpu' extra "
            "(pip install 'raygate[gpu]', i.e. ray[llm] with vLLM) on the GPU nodes' image: "
            f"{exc}"
        ) from exc
    return vllm_application(model.model_dump(mode="json"))


NER_HANDLE = "guardrails-ner"  # not a model name: model names have no "guardrails-" rule,
# but the config refuses a model by that name (see PlatformConfig)


def build_app(args: dict[str, Any]) -> Application:
    """Serve application builder: ``args`` is the platform config."""
    return build_graph(parse_platform_config(args, "serve config", "applications[].args"))
