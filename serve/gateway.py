"""The request path, independent of HTTP: authenticate, resolve, call, shape.

`serve.api` is the HTTP edge around it (JSON and SSE encoding, headers); the ingress
deployment only constructs it. Later stages (admission, guardrails, cache, settlement)
slot in here in the order docs/architecture.md gives.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from models.engine import Engine
from serve.auth.authenticator import Authenticator, Principal
from serve.config import ModelConfig, PlatformConfig, Task
from serve.errors import InvalidRequest, NotFound, PermissionDenied
from serve.keystore import KeyStore
from serve.openai_requests import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from serve.openai_types import ChatCompletion, ChatCompletionChunk, Completion, EmbeddingList
from serve.state import StateStore


@dataclass(frozen=True, slots=True)
class Route:
    model: ModelConfig
    engine: Engine


class Gateway:
    def __init__(
        self,
        config: PlatformConfig,
        authenticator: Authenticator,
        keys: KeyStore,
        state: StateStore,
        engines: Mapping[str, Engine],
        admin_key: str | None,
    ) -> None:
        self.config = config
        self.authenticator = authenticator
        self.keys = keys
        self.state = state
        self.engines = dict(engines)
        self.admin_key = admin_key
        self.started = int(time.time())

    async def authenticate(self, authorization: str | None) -> Principal:
        return await self.authenticator.authenticate(authorization)

    def check_admin(self, authorization: str | None) -> None:
        self.authenticator.check_admin(authorization, self.admin_key)

    def route(self, principal: Principal, requested: str, task: Task) -> Route:
        model = self.config.model(requested)
        if model is None:
            raise NotFound(f"The model '{requested}' does not exist.", param="model")
        if not principal.may_use(self.config, requested, model.name):
            raise PermissionDenied(
                f"Team '{principal.team}' is not allowed to use the model '{requested}'.",
                param="model",
            )
        if task not in model.served_tasks:
            raise InvalidRequest(
                f"The model '{requested}' does not support {task}.",
                param="model",
                code="unsupported_task",
            )
        return Route(model=model, engine=self.engines[model.name])

    def visible_models(self, principal: Principal) -> list[dict[str, Any]]:
        out = []
        for model in self.config.models:
            for name in (model.name, *model.aliases):
                if principal.may_use(self.config, name, model.name):
                    out.append(
                        {
                            "id": name,
                            "object": "model",
                            "created": self.started,
                            "owned_by": model.owned_by,
                        }
                    )
        return out

    # -- chat ---------------------------------------------------------------------------

    async def chat(self, principal: Principal, request: ChatCompletionRequest) -> ChatCompletion:
        route = self.route(principal, request.model, "chat")
        result = await route.engine.chat(_engine_request(request, route))
        result["model"] = request.model
        for choice in result["choices"]:
            # Fields OpenAI's schema requires that engines (llama.cpp, vLLM) may omit.
            choice.setdefault("logprobs", None)
            choice["message"].setdefault("refusal", None)
        return result

    async def chat_stream(
        self, principal: Principal, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionChunk]:
        route = self.route(principal, request.model, "chat")
        chunks = route.engine.chat_stream(_engine_request(request, route))
        async for chunk in _shape_stream(chunks, request):
            yield chunk

    # -- completions --------------------------------------------------------------------

    async def completion(self, principal: Principal, request: CompletionRequest) -> Completion:
        route = self.route(principal, request.model, "completions")
        result = await route.engine.completion(_engine_request(request, route))
        result["model"] = request.model
        return result

    async def completion_stream(
        self, principal: Principal, request: CompletionRequest
    ) -> AsyncIterator[Completion]:
        route = self.route(principal, request.model, "completions")
        chunks = route.engine.completion_stream(_engine_request(request, route))
        async for chunk in _shape_stream(chunks, request):
            yield chunk

    # -- embeddings ---------------------------------------------------------------------

    async def embeddings(self, principal: Principal, request: EmbeddingRequest) -> EmbeddingList:
        route = self.route(principal, request.model, "embeddings")
        result = await route.engine.embeddings(_engine_request(request, route))
        result["model"] = request.model
        return result

    # -- lifecycle ----------------------------------------------------------------------

    async def readiness(self) -> dict[str, bool]:
        status = {name: await engine.ready() for name, engine in self.engines.items()}
        status["database"] = await self.keys.ping()
        status["state"] = await self.state.ping()
        return status

    async def aclose(self) -> None:
        for engine in self.engines.values():
            await engine.aclose()
        await self.keys.aclose()
        await self.state.aclose()


C = TypeVar("C", ChatCompletionChunk, Completion)


async def _shape_stream(
    chunks: AsyncIterator[C], request: ChatCompletionRequest | CompletionRequest
) -> AsyncIterator[C]:
    """Public model id on every chunk; the usage chunk only when the caller asked for it."""
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    async for chunk in chunks:
        chunk["model"] = request.model
        if chunk.get("usage") is not None and not chunk["choices"]:
            if include_usage:
                yield chunk
            continue
        if include_usage:
            chunk["usage"] = None
        else:
            chunk.pop("usage", None)
        yield chunk


def _engine_request(
    request: ChatCompletionRequest | CompletionRequest | EmbeddingRequest, route: Route
) -> dict[str, Any]:
    body = request.model_dump(exclude_none=True)
    body["model"] = route.model.name
    body.pop("stream_options", None)
    return body
