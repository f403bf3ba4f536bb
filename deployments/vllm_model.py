"""The vLLM model deployment: Ray Serve LLM's ``LLMServer`` behind raygate's model interface.

`VLLMModel` is an ``LLMServer`` (Ray Serve LLM's ``deployment_cls`` seam), so it keeps
what LLMServer does per replica (engine start, health checks, routing stats, LoRA
multiplexing, shutdown) and its GPU placement. It answers the same methods as
`deployments.model.ModelDeployment`, with plain OpenAI dicts, so the ingress reaches it
through `serve.remote_engine.RemoteEngine` unchanged: the vLLM protocol requests are
built here, inside the GPU replica, and the answers translated by
`models.engines.vllm_stream`. Importing this module needs the ``gpu`` extra (vLLM).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any, cast

from ray import serve
from ray.serve import Application
from ray.serve.llm import LLMConfig, LLMServer, build_llm_deployment
from ray.serve.llm.openai_api_models import ChatCompletionRequest, CompletionRequest

from models.engine import Request
from models.engines.vllm_stream import response_dict, stream_chunks, vllm_request
from models.spec import ModelSpec
from models.vllm_config import llm_config_kwargs
from serve.openai_types import ChatCompletion, ChatCompletionChunk, Completion, EmbeddingList

__all__ = ["VLLMModel", "vllm_application"]


async def _first(results: AsyncGenerator[Any, None]) -> Any:
    async with aclosing(results):
        async for item in results:
            return item
    return None


class VLLMModel(LLMServer):
    """``chat`` and ``embeddings`` replace LLMServer's methods of the same name (which take
    vLLM request objects) with the raygate ones; LLMServer's are reached through super()."""

    @property
    def _model_id(self) -> str:
        return str(self._llm_config.model_id)

    @property
    def _request_id(self) -> str:
        """The model id vLLM is asked for: ``<model>:<adapter>`` when the ingress asked for
        a LoRA adapter (LLMServer loads it from the multiplexed model id), else the model."""
        return serve.get_multiplexed_model_id() or self._model_id

    async def _stream(self, results: AsyncGenerator[Any, None]) -> AsyncIterator[dict[str, Any]]:
        async with aclosing(results):
            async for chunk in stream_chunks(results, self._model_id):
                yield chunk

    async def chat(self, request: Request) -> ChatCompletion:  # type: ignore[override]
        body = vllm_request(ChatCompletionRequest, request, self._request_id, stream=False)
        answer = await _first(await super().chat(body))
        return cast(ChatCompletion, response_dict(answer, self._model_id))

    async def chat_stream(self, request: Request) -> AsyncIterator[ChatCompletionChunk]:
        body = vllm_request(ChatCompletionRequest, request, self._request_id, stream=True)
        async for chunk in self._stream(await super().chat(body)):
            yield cast(ChatCompletionChunk, chunk)

    async def completion(self, request: Request) -> Completion:
        body = vllm_request(CompletionRequest, request, self._request_id, stream=False)
        answer = await _first(await super().completions(body))
        return cast(Completion, response_dict(answer, self._model_id))

    async def completion_stream(self, request: Request) -> AsyncIterator[Completion]:
        body = vllm_request(CompletionRequest, request, self._request_id, stream=True)
        async for chunk in self._stream(await super().completions(body)):
            yield cast(Completion, chunk)

    async def embeddings(self, request: Request) -> EmbeddingList:  # type: ignore[override]
        from ray.llm._internal.serve.core.configs.openai_api_models import (
            EmbeddingCompletionRequest,
        )

        body = vllm_request(EmbeddingCompletionRequest, request, self._request_id, stream=None)
        answer = await _first(await super().embeddings(body))
        return cast(EmbeddingList, response_dict(answer, self._model_id, "data"))

    async def ready(self) -> bool:
        if self.engine is None:
            return False
        try:
            await self.check_health()
        except Exception:
            return False
        return True


def vllm_application(model: Mapping[str, Any]) -> Application:
    """The deployment of a platform config model whose backend is ``vllm`` (its
    ``model_dump(mode="json")``): ``LLMConfig`` from the model's spec, Ray Serve LLM's
    deployment options (GPU placement, autoscaling), named ``model-<name>``."""
    spec = ModelSpec.from_platform_model(model)
    app: Application = build_llm_deployment(
        LLMConfig(**llm_config_kwargs(spec)),
        deployment_cls=VLLMModel,
        override_serve_options={"name": f"model-{spec.name}"},
    )
    return app
