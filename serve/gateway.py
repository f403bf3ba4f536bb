"""The request path, independent of HTTP: authenticate, plan, cache, call, shape.

`serve.api` is the HTTP edge around it (JSON and SSE encoding, headers); the ingress
deployment only constructs it. Stages run in the order docs/architecture.md gives;
admission, guardrails and settlement slot in around `_plan` and the call.

Every answer comes back as `Served` (or `ServedStream`) with the response headers the
edge adds: which model answered (`x-raygate-model`), whether a fallback did
(`x-raygate-fallback: <primary>-><served>`), and the cache status (`x-raygate-cache`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from models.engine import Engine
from serve.auth.authenticator import Authenticator, Principal
from serve.cache import (
    CacheMode,
    CacheStatus,
    Lookup,
    ResponseCache,
    replay_chat_stream,
    replay_completion_stream,
)
from serve.config import PlatformConfig, Task
from serve.errors import InternalError, InvalidRequest, NotFound, PermissionDenied
from serve.keystore import KeyStore
from serve.openai_requests import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from serve.openai_types import ChatCompletion, ChatCompletionChunk, Completion, EmbeddingList
from serve.routing import Attempt, Executor, RoutePlanner, Stream
from serve.state import StateStore

log = logging.getLogger("raygate.gateway")

T = TypeVar("T")
C = TypeVar("C", ChatCompletionChunk, Completion)

MODEL_HEADER = "x-raygate-model"
FALLBACK_HEADER = "x-raygate-fallback"
CACHE_HEADER = "x-raygate-cache"


@dataclass(frozen=True, slots=True)
class Plan:
    """Where a request may go: the models to try in order (primary first)."""

    requested: str
    cache_name: str  # canonical model for a model or alias; the route name for a route
    models: tuple[str, ...]
    pinned: str | None  # the model the requested name always means (None for a route)


@dataclass(slots=True)
class Served(Generic[T]):
    body: T
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ServedStream(Generic[T]):
    """A stream whose first chunk already arrived: errors before it were HTTP errors."""

    first: T
    rest: AsyncIterator[T]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CallOptions:
    cache: CacheMode = CacheMode.USE


class Gateway:
    def __init__(
        self,
        config: PlatformConfig,
        authenticator: Authenticator,
        keys: KeyStore,
        state: StateStore,
        engines: Mapping[str, Engine],
        admin_key: str | None,
        *,
        planner: RoutePlanner | None = None,
        executor: Executor | None = None,
        cache: ResponseCache | None = None,
    ) -> None:
        self.config = config
        self.authenticator = authenticator
        self.keys = keys
        self.state = state
        self.engines = dict(engines)
        self.admin_key = admin_key
        self.planner = planner or planner_for(config)
        self.executor = executor or Executor(
            {m.name: m.reliability for m in config.models}, on_attempt=_log_attempt
        )
        self.cache = cache or ResponseCache()
        self.started = int(time.time())

    async def authenticate(self, authorization: str | None) -> Principal:
        return await self.authenticator.authenticate(authorization)

    def check_admin(self, authorization: str | None) -> None:
        self.authenticator.check_admin(authorization, self.admin_key)

    def plan(self, principal: Principal, requested: str, task: Task) -> Plan:
        """Resolve a public name (model, alias or route) to the models that may answer."""
        route = self.config.route(requested)
        model = self.config.model(requested)
        if route is None and model is None:
            raise NotFound(f"The model '{requested}' does not exist.", param="model")
        canonical = model.name if model is not None else requested
        if not principal.may_use(self.config, requested, canonical):
            raise PermissionDenied(
                f"Team '{principal.team}' is not allowed to use the model '{requested}'.",
                param="model",
            )
        names = self.planner.plan(requested, principal.team)
        # The primary must serve the task; fallbacks that don't are skipped.
        primary = self.config.model(names[0])
        if primary is None or task not in primary.served_tasks:
            raise InvalidRequest(
                f"The model '{requested}' does not support {task}.",
                param="model",
                code="unsupported_task",
            )
        usable = tuple(
            n for n in names if (m := self.config.model(n)) is not None and task in m.served_tasks
        )
        return Plan(requested, canonical, usable, model.name if model is not None else None)

    def visible_models(self, principal: Principal) -> list[dict[str, Any]]:
        out = []
        names = [(m.name, m.name, m.owned_by) for m in self.config.models]
        names += [(a, m.name, m.owned_by) for m in self.config.models for a in m.aliases]
        names += [(r.name, r.name, "raygate") for r in self.config.routes]
        for name, canonical, owner in sorted(names, key=lambda n: self._order(n[0])):
            if principal.may_use(self.config, name, canonical):
                out.append(
                    {"id": name, "object": "model", "created": self.started, "owned_by": owner}
                )
        return out

    def _order(self, name: str) -> int:
        for index, model in enumerate(self.config.models):
            if name == model.name or name in model.aliases:
                return index
        return len(self.config.models)

    # -- chat ---------------------------------------------------------------------------

    async def chat(
        self,
        principal: Principal,
        request: ChatCompletionRequest,
        options: CallOptions = CallOptions(),
    ) -> Served[ChatCompletion]:
        plan = self.plan(principal, request.model, "chat")
        body = request.model_dump(exclude_none=True)
        lookup = await self._lookup(principal, plan, body, "chat", options)
        if lookup.hit is not None:
            return self._from_cache(plan, lookup, _shape_chat(_chat(lookup.hit.response)))
        outcome = await self.executor.call(
            plan.models, lambda m: self.engines[m].chat(_for_model(body, m))
        )
        result = _shape_chat(outcome.result)
        await self.cache.store(lookup, result)
        result["model"] = _public_model(plan, outcome.model)
        return Served(result, _headers(plan, outcome.model, outcome.primary, lookup.status))

    async def chat_stream(
        self,
        principal: Principal,
        request: ChatCompletionRequest,
        options: CallOptions = CallOptions(),
    ) -> ServedStream[ChatCompletionChunk]:
        plan = self.plan(principal, request.model, "chat")
        body = request.model_dump(exclude_none=True)
        lookup = await self._lookup(principal, plan, body, "chat", options)
        if lookup.hit is not None:
            completion = _shape_chat(_chat(lookup.hit.response))
            headers = _cache_headers(lookup, completion)
            completion["model"] = _public_model(plan, str(completion["model"]))
            replay = _shape_stream(replay_chat_stream(completion), request, completion["model"])
            return await _first(replay, headers)
        stream = await self.executor.stream(
            plan.models, lambda m: self.engines[m].chat_stream(_for_model(body, m))
        )
        chunks: AsyncIterator[ChatCompletionChunk] = _closing(stream)
        if lookup.ticket is not None:
            chunks = self.cache.record_chat_stream(lookup, chunks)
        shaped = _shape_stream(chunks, request, _public_model(plan, stream.model))
        return await _first(shaped, _headers(plan, stream.model, stream.primary, lookup.status))

    # -- completions --------------------------------------------------------------------

    async def completion(
        self, principal: Principal, request: CompletionRequest, options: CallOptions = CallOptions()
    ) -> Served[Completion]:
        plan = self.plan(principal, request.model, "completions")
        body = request.model_dump(exclude_none=True)
        lookup = await self._lookup(principal, plan, body, "completions", options)
        if lookup.hit is not None:
            return self._from_cache(plan, lookup, dict(lookup.hit.response))
        outcome = await self.executor.call(
            plan.models, lambda m: self.engines[m].completion(_for_model(body, m))
        )
        result = outcome.result
        await self.cache.store(lookup, result)
        result["model"] = _public_model(plan, outcome.model)
        return Served(result, _headers(plan, outcome.model, outcome.primary, lookup.status))

    async def completion_stream(
        self, principal: Principal, request: CompletionRequest, options: CallOptions = CallOptions()
    ) -> ServedStream[Completion]:
        plan = self.plan(principal, request.model, "completions")
        body = request.model_dump(exclude_none=True)
        lookup = await self._lookup(principal, plan, body, "completions", options)
        if lookup.hit is not None:
            completion: Completion = dict(lookup.hit.response)  # type: ignore[assignment]
            headers = _cache_headers(lookup, completion)
            completion["model"] = _public_model(plan, str(completion["model"]))
            replay = _shape_stream(
                replay_completion_stream(completion), request, completion["model"]
            )
            return await _first(replay, headers)
        stream = await self.executor.stream(
            plan.models, lambda m: self.engines[m].completion_stream(_for_model(body, m))
        )
        chunks: AsyncIterator[Completion] = _closing(stream)
        if lookup.ticket is not None:
            chunks = self.cache.record_completion_stream(lookup, chunks)
        shaped = _shape_stream(chunks, request, _public_model(plan, stream.model))
        return await _first(shaped, _headers(plan, stream.model, stream.primary, lookup.status))

    # -- embeddings ---------------------------------------------------------------------

    async def embeddings(
        self, principal: Principal, request: EmbeddingRequest, options: CallOptions = CallOptions()
    ) -> Served[EmbeddingList]:
        plan = self.plan(principal, request.model, "embeddings")
        body = request.model_dump(exclude_none=True)
        outcome = await self.executor.call(
            plan.models, lambda m: self.engines[m].embeddings(_for_model(body, m))
        )
        result = outcome.result
        result["model"] = _public_model(plan, outcome.model)
        return Served(result, _headers(plan, outcome.model, outcome.primary, None))

    # -- cache --------------------------------------------------------------------------

    async def _lookup(
        self,
        principal: Principal,
        plan: Plan,
        body: Mapping[str, Any],
        endpoint: Any,
        options: CallOptions,
    ) -> Lookup:
        # Keyed on the canonical name (aliases share entries) or the route's name.
        keyed = _for_model(body, plan.cache_name)
        return await self.cache.lookup(principal.team, keyed, endpoint=endpoint, mode=options.cache)

    def _from_cache(self, plan: Plan, lookup: Lookup, response: Any) -> Served[Any]:
        headers = _cache_headers(lookup, response)
        response["model"] = _public_model(plan, str(response["model"]))
        return Served(response, headers)

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


def planner_for(config: PlatformConfig) -> RoutePlanner:
    return RoutePlanner(
        config.routes,
        fallbacks={m.name: m.reliability.fallbacks for m in config.models},
        aliases={a: m.name for m in config.models for a in m.aliases},
    )


def _log_attempt(attempt: Attempt) -> None:
    if attempt.result != "ok":
        log.warning("model %s try %d: %s", attempt.model, attempt.number, attempt.result)


def _public_model(plan: Plan, served: str) -> str:
    """The requested name when it always means the model that answered (a model or one of
    its aliases); otherwise, after a route's pick or a fallback, the model that answered."""
    return plan.requested if served == plan.pinned else served


def _headers(plan: Plan, served: str, primary: str, cache: CacheStatus | None) -> dict[str, str]:
    headers = {MODEL_HEADER: served}
    if served != primary:
        headers[FALLBACK_HEADER] = f"{primary}->{served}"
    if cache is not None:
        headers[CACHE_HEADER] = cache.value
    return headers


def _cache_headers(lookup: Lookup, response: Mapping[str, Any]) -> dict[str, str]:
    """A cached answer names the model that first produced it; ``age`` in seconds."""
    headers = {MODEL_HEADER: str(response["model"]), CACHE_HEADER: lookup.status.value}
    if lookup.hit is not None:
        headers["age"] = str(int(lookup.hit.age_s))
    return headers


def _for_model(body: Mapping[str, Any], model: str) -> dict[str, Any]:
    request = {**body, "model": model}
    request.pop("stream_options", None)
    return request


def _chat(response: Mapping[str, Any]) -> ChatCompletion:
    return cast(ChatCompletion, dict(response))


def _shape_chat(result: ChatCompletion) -> ChatCompletion:
    for choice in result["choices"]:
        # Fields OpenAI's schema requires that engines (llama.cpp, vLLM) may omit.
        choice.setdefault("logprobs", None)
        choice["message"].setdefault("refusal", None)
    return result


async def _closing(stream: Stream[T]) -> AsyncIterator[T]:
    async with stream:
        async for item in stream:
            yield item


async def _first(chunks: AsyncIterator[T], headers: dict[str, str]) -> ServedStream[T]:
    iterator = aiter(chunks)
    first = await anext(iterator, None)
    if first is None:
        raise InternalError("The model returned an empty stream.")
    return ServedStream(first, iterator, headers)


async def _shape_stream(
    chunks: AsyncIterator[C], request: ChatCompletionRequest | CompletionRequest, model: str
) -> AsyncIterator[C]:
    """Public model id on every chunk; the usage chunk only when the caller asked for it."""
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    async for chunk in chunks:
        chunk["model"] = model
        if chunk.get("usage") is not None and not chunk["choices"]:
            if include_usage:
                yield chunk
            continue
        if include_usage:
            chunk["usage"] = None
        else:
            chunk.pop("usage", None)
        yield chunk
