"""The request path, independent of HTTP: authenticate, plan, cache, call, shape.

`serve.api` is the HTTP edge around it (JSON and SSE encoding, headers); the ingress
deployment only constructs it. Stages run in the order docs/architecture.md gives;
admission, guardrails and settlement slot in around `_plan` and the call.

Every answer comes back as `Served` (or `ServedStream`) with the response headers the
edge adds: which model answered (`x-raygate-model`), whether a fallback did
(`x-raygate-fallback: <primary>-><served>`), and the cache status (`x-raygate-cache`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import anyio

from guardrails.verdicts import RequestVerdict
from models.engine import Engine
from models.pricing import Price, price_at
from serve import shaping, texts
from serve.admission import Admission, Ticket
from serve.audit import AuditScope, AuditStore
from serve.auth.authenticator import Authenticator, Principal
from serve.cache import (
    Lookup,
    ResponseCache,
    replay_chat_stream,
    replay_completion_stream,
)
from serve.call import Call
from serve.config import PlatformConfig, Task
from serve.errors import GatewayError, InternalError
from serve.fairshare import FairShare, Held, MemoryFairQueue
from serve.guard_stage import ContentBlocked, GuardStage, actions_counts
from serve.keystore import KeyStore
from serve.model_access import ModelAccess, Plan, planner_for
from serve.models_admin import ownership
from serve.models_admin.ownership import ChangeScope
from serve.openai_requests import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from serve.openai_types import ChatCompletion, ChatCompletionChunk, Completion, EmbeddingList
from serve.record import RequestObserver
from serve.routing import Attempt, Executor, RoutePlanner, Stream
from serve.state import StateStore
from serve.streams import aclose_quietly
from serve.telemetry import Telemetry

log = logging.getLogger("raygate.gateway")

T = TypeVar("T")
C = TypeVar("C", ChatCompletionChunk, Completion)


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
        admission: Admission | None = None,
        observers: Sequence[RequestObserver] = (),
        guard: GuardStage | None = None,
        telemetry: Telemetry | None = None,
        audit: AuditStore | None = None,
        fair_share: FairShare | None = None,
        closers: Sequence[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        self.config = config
        self.authenticator = authenticator
        self.keys = keys
        self.state = state
        self.engines = dict(engines)
        self.admin_key = admin_key
        self.planner = planner or planner_for(config)
        self.access = ModelAccess(config, self.planner)
        self.executor = executor or Executor(
            {m.name: m.reliability for m in config.models}, on_attempt=_log_attempt
        )
        self.cache = cache or ResponseCache()
        self.admission = admission
        self.observers = list(observers)
        self.guard = guard
        self.telemetry = telemetry
        self.audit = audit
        self.fair = fair_share or FairShare(MemoryFairQueue(), {})
        self._closers = list(closers)
        self.started = int(time.time())

    async def authenticate(self, authorization: str | None) -> Principal:
        return await self.authenticator.authenticate(authorization)

    def check_admin(self, authorization: str | None) -> None:
        self.authenticator.check_admin(authorization, self.admin_key)

    async def authorize_audit(self, authorization: str | None) -> AuditScope:
        """The admin key reads every team; a team's auditor key reads its own team."""
        principal = await self.authenticator.admin_or_role(
            authorization,
            self.admin_key,
            "auditor",
            "Reading the audit log needs the admin key or an auditor key.",
        )
        return AuditScope.all_teams() if principal is None else AuditScope.only(principal.team)

    async def authorize_models(self, authorization: str | None) -> ChangeScope:
        """The admin key changes any model; a team's model owner key only its team's."""
        return await ownership.authorize(self.authenticator, self.admin_key, authorization)

    def plan(self, principal: Principal, requested: str, task: Task) -> Plan:
        """Resolve a public name (model, alias, adapter or route) to the models that may
        answer (`serve.model_access`)."""
        return self.access.plan(principal, requested, task)

    def visible_models(self, principal: Principal) -> list[dict[str, Any]]:
        return self.access.visible(principal, self.started)

    # -- chat and completions -----------------------------------------------------------

    async def chat(
        self, principal: Principal, request: ChatCompletionRequest, call: Call
    ) -> Served[ChatCompletion]:
        return await self._answer(_CHAT, principal, request, call)

    async def chat_stream(
        self, principal: Principal, request: ChatCompletionRequest, call: Call
    ) -> ServedStream[ChatCompletionChunk]:
        return await self._stream(_CHAT, principal, request, call)

    async def completion(
        self, principal: Principal, request: CompletionRequest, call: Call
    ) -> Served[Completion]:
        return await self._answer(_COMPLETION, principal, request, call)

    async def completion_stream(
        self, principal: Principal, request: CompletionRequest, call: Call
    ) -> ServedStream[Completion]:
        return await self._stream(_COMPLETION, principal, request, call)

    async def _answer(
        self,
        kind: _Kind,
        principal: Principal,
        request: ChatCompletionRequest | CompletionRequest,
        call: Call,
    ) -> Served[Any]:
        plan = self._begin(call, principal, request, kind.task)
        body = request.model_dump(exclude_none=True)
        ticket = await self._admit(call, principal, plan, body)
        try:
            body, verdict = await self._guard_input(call, principal, body)
            lookup = await self._lookup(principal, plan, body, kind.task, call)
            if lookup.hit is not None:
                answer = self._from_cache(plan, lookup, kind.shape(dict(lookup.hit.response)))
                await self._settle(call, ticket, None, None)
                answer.body = self._guard_output(call, principal, verdict, answer.body)
                return self._done(call, ticket, plan, answer, shaping.finish_reason(answer.body))
            bounded = self._bounded(body, ticket)
            # A shared model's slot is taken outside the executor: waiting in the fair
            # queue must not count as a backend failure, a retry or the model's timeout.
            async with self.fair.slot(plan.models[0], principal.team):
                outcome = await self.executor.call(
                    plan.models,
                    lambda m: self._attempt(
                        call, m, kind.call, _for_model(bounded, plan.upstream(m))
                    ),
                )
            result = kind.shape(outcome.result)
            await self.cache.store(lookup, result)
            self._served(call, outcome.model, outcome.primary)
            await self._settle(call, ticket, result.get("usage"), outcome.model)
            result = self._guard_output(call, principal, verdict, result)
            result["model"] = shaping.public_model(plan, outcome.model)
            headers = shaping.answer_headers(plan, outcome.model, outcome.primary, lookup.status)
            return self._done(
                call, ticket, plan, Served(result, headers), shaping.finish_reason(result)
            )
        except BaseException as exc:
            await self._failed(call, ticket, exc)
            raise

    async def _stream(
        self,
        kind: _Kind,
        principal: Principal,
        request: ChatCompletionRequest | CompletionRequest,
        call: Call,
    ) -> ServedStream[Any]:
        plan = self._begin(call, principal, request, kind.task)
        body = request.model_dump(exclude_none=True)
        ticket = await self._admit(call, principal, plan, body)
        try:
            body, verdict = await self._guard_input(call, principal, body)
            lookup = await self._lookup(principal, plan, body, kind.task, call)
            model: str | None
            if lookup.hit is not None:
                cached = kind.shape(dict(lookup.hit.response))
                headers = shaping.cache_headers(lookup, cached)
                self._served(call, str(cached["model"]), str(cached["model"]))
                public = shaping.public_model(plan, str(cached["model"]))
                chunks: AsyncIterator[Any] = kind.replay(cached)
                model = None  # no model ran: nothing counts against the limits
            else:
                bounded = self._bounded(body, ticket)
                call.backend_called = True
                slot = await self.fair.acquire(plan.models[0], principal.team)
                try:
                    stream = await self.executor.stream(
                        plan.models, lambda m: self._stream_attempt(call, m, kind, bounded, plan)
                    )
                except BaseException:
                    if slot is not None:
                        await slot.release()
                    raise
                self._served(call, stream.model, stream.primary)
                chunks = Held(slot, _closing(stream))  # the slot is held until the end
                if lookup.ticket is not None:
                    chunks = kind.record(self.cache, lookup, chunks)
                public = shaping.public_model(plan, stream.model)
                headers = shaping.answer_headers(plan, stream.model, stream.primary, lookup.status)
                model = stream.model
            # The meter reads the backend's own chunks (one token at least per content
            # chunk); the output guardrails then may hold text back and merge chunks.
            metered = self._metered(call, ticket, chunks, model)
            guarded = self._guard_stream(call, principal, verdict, metered)
            shaped = shaping.shape_stream(guarded, request, public)
            return await self._first_of(call, ticket, plan, shaped, headers)
        except BaseException as exc:
            await self._failed(call, ticket, exc)
            raise

    # -- embeddings ---------------------------------------------------------------------

    async def embeddings(
        self, principal: Principal, request: EmbeddingRequest, call: Call
    ) -> Served[EmbeddingList]:
        plan = self._begin(call, principal, request, "embeddings")
        body = request.model_dump(exclude_none=True)
        ticket = await self._admit(call, principal, plan, body, with_output=False)
        try:
            body = await self._guard_embedding_input(call, principal, body)
            async with self.fair.slot(plan.models[0], principal.team):
                outcome = await self.executor.call(
                    plan.models, lambda m: self._attempt(call, m, _embed, _for_model(body, m))
                )
            result = outcome.result
            self._served(call, outcome.model, outcome.primary)
            await self._settle(call, ticket, result.get("usage"), outcome.model)
            result["model"] = shaping.public_model(plan, outcome.model)
            headers = shaping.answer_headers(plan, outcome.model, outcome.primary, None)
            return self._done(call, ticket, plan, Served(result, headers), None)
        except BaseException as exc:
            await self._failed(call, ticket, exc)
            raise

    # -- backend attempts (one span each) -----------------------------------------------

    def _kind_of(self, model: str) -> str:
        config = self.config.model(model)
        return config.backend.kind if config is not None else "unknown"

    async def _attempt(
        self,
        call: Call,
        model: str,
        method: Callable[[Engine, dict[str, Any]], Awaitable[T]],
        body: dict[str, Any],
    ) -> T:
        call.backend_called = True
        call.attempts[model] = call.attempts.get(model, 0) + 1
        if call.trace is None:
            return await method(self.engines[model], body)
        with call.trace.backend_attempt(model, self._kind_of(model), call.attempts[model]):
            return await method(self.engines[model], body)

    def _stream_attempt(
        self, call: Call, model: str, kind: _Kind, body: dict[str, Any], plan: Plan
    ) -> AsyncIterator[Any]:
        call.attempts[model] = call.attempts.get(model, 0) + 1
        chunks = kind.stream(self.engines[model], _for_model(body, plan.upstream(model)))
        if call.trace is None:
            return chunks
        return call.trace.backend_stream(model, self._kind_of(model), call.attempts[model], chunks)

    # -- guardrails ---------------------------------------------------------------------

    async def _guard_input(
        self, call: Call, principal: Principal, body: dict[str, Any]
    ) -> tuple[dict[str, Any], RequestVerdict | None]:
        """Redact and screen the request before any backend or cache sees it."""
        call.prompt = texts.prompt_text(body) if call.prompt_policy == "full" else None
        if self.guard is None:
            if call.prompt_policy == "masked":
                call.prompt = texts.prompt_text(body)
            return body, None
        try:
            with call.stage("raygate.guardrails.input"):
                verdict = await self.guard.inspect(principal.team, body)
        except ContentBlocked:
            call.guardrails["blocked.input"] = 1
            if call.prompt_policy == "masked":  # what was refused, for the audit log
                call.prompt = self.guard.mask(texts.prompt_text(body))
            raise
        call.guardrails.update(actions_counts(verdict.actions))
        if call.prompt_policy == "masked":
            call.prompt = texts.prompt_text(verdict.request)  # as the provider saw it
        return verdict.request, verdict

    async def _guard_embedding_input(
        self, call: Call, principal: Principal, body: dict[str, Any]
    ) -> dict[str, Any]:
        text = body.get("input")
        if self.guard is None or not (
            isinstance(text, str)
            or (isinstance(text, list) and all(isinstance(t, str) for t in text))
        ):
            return body
        with call.stage("raygate.guardrails.input"):
            verdict = await self.guard.inspect(principal.team, {"prompt": text}, injection=False)
        call.guardrails.update(actions_counts(verdict.actions))
        return {**body, "input": verdict.request["prompt"]}

    def _guard_output(
        self,
        call: Call,
        principal: Principal,
        verdict: RequestVerdict | None,
        result: dict[str, Any],
    ) -> dict[str, Any]:
        if self.guard is not None and verdict is not None:
            try:
                with call.stage("raygate.guardrails.output"):
                    result, actions = self.guard.respond(principal.team, verdict, result)
            except ContentBlocked:
                call.guardrails["blocked.output"] = 1
                raise
            call.guardrails.update(actions_counts(actions))
        if call.prompt_policy != "none":
            call.response = self._audit_text(call, texts.answer_text(result))
        return result

    def _guard_stream(
        self,
        call: Call,
        principal: Principal,
        verdict: RequestVerdict | None,
        chunks: AsyncIterator[C],
    ) -> AsyncIterator[C]:
        if self.guard is None or verdict is None:
            return chunks
        return self.guard.stream(principal.team, verdict, chunks, call.guardrails)

    def _audit_text(self, call: Call, text: str) -> str:
        """The answer as the audit log keeps it: masked unless the team stores ``full``."""
        if call.prompt_policy == "masked" and self.guard is not None:
            return self.guard.mask(text)
        return text

    # -- stages -------------------------------------------------------------------------

    def _begin(
        self,
        call: Call,
        principal: Principal,
        request: ChatCompletionRequest | CompletionRequest | EmbeddingRequest,
        task: Task,
    ) -> Plan:
        requested = request.model
        call.principal = principal
        call.model_requested = requested
        if call.trace is not None:
            call.trace.request(
                requested,
                stream=call.stream,
                max_tokens=getattr(request, "max_tokens", None),
                temperature=getattr(request, "temperature", None),
                top_p=getattr(request, "top_p", None),
            )
        call.prompt_policy = self.config.audit.prompt_storage_for(principal.team)
        return self.plan(principal, requested, task)

    def price(self, model: str) -> Price:
        config = self.config.model(model)
        today = dt.datetime.now(dt.UTC).date()
        return price_at(config.pricing if config is not None else (), today)

    async def _admit(
        self,
        call: Call,
        principal: Principal,
        plan: Plan,
        body: Mapping[str, Any],
        *,
        with_output: bool = True,
    ) -> Ticket | None:
        if self.admission is None:
            return None
        # The worst case over every model that may answer (a fallback may cost more).
        prices = [self.price(m) for m in plan.models]
        with call.stage("raygate.admission"):
            return await self.admission.admit(
                principal.team,
                principal.key_id,
                body,
                prices,
                call.project,
                with_output=with_output,
            )

    def _bounded(self, body: dict[str, Any], ticket: Ticket | None) -> dict[str, Any]:
        """Send the reserved output bound upstream when the caller set none, so a reservation
        made from it holds (teams with token limits or budgets only)."""
        if ticket is None or not ticket.bounds_output:
            return body
        if body.get("max_tokens") or body.get("max_completion_tokens"):
            return body
        return {**body, "max_tokens": ticket.output_tokens // int(body.get("n") or 1)}

    def _served(self, call: Call, model: str, primary: str) -> None:
        call.model_served = model
        config = self.config.model(model)
        call.provider = config.backend.kind if config is not None else None
        call.fallback_from = primary if model != primary else None

    async def _settle(
        self, call: Call, ticket: Ticket | None, usage: Mapping[str, Any] | None, model: str | None
    ) -> None:
        """Record the real usage and cost, and release the reservations (once)."""
        prompt = int(usage.get("prompt_tokens") or 0) if usage else 0
        output = int(usage.get("completion_tokens") or 0) if usage else 0
        details = usage.get("prompt_tokens_details") if usage else None
        cached = int(details.get("cached_tokens") or 0) if isinstance(details, Mapping) else 0
        call.usage(prompt, output, cached)
        price = self.price(model) if model is not None else None
        if ticket is not None:
            call.cost_usd = await self.admission_settle(ticket, price, prompt, output, cached)
        elif price is not None:
            call.cost_usd = price.cost(prompt, output, cached)

    async def admission_settle(
        self, ticket: Ticket, price: Price | None, prompt: int, output: int, cached: int
    ) -> float:
        assert self.admission is not None
        return await self.admission.settle(ticket, price, prompt, output, cached)

    async def _failed(self, call: Call, ticket: Ticket | None, exc: BaseException) -> None:
        """Every failure path releases what admission reserved (no usage, no cost)."""
        if ticket is not None:
            await self.admission_settle(ticket, None, 0, 0, 0)
            if isinstance(exc, GatewayError):
                exc.headers = {**ticket.headers, **exc.headers}

    def _done(
        self,
        call: Call,
        ticket: Ticket | None,
        plan: Plan,
        served: Served[T],
        finish_reason: str | None,
    ) -> Served[T]:
        call.finish_reason = finish_reason
        served.headers.update(self._extra_headers(ticket, plan, call))
        return served

    def _extra_headers(self, ticket: Ticket | None, plan: Plan, call: Call) -> dict[str, str]:
        headers = dict(ticket.headers) if ticket is not None else {}
        for name in {plan.models[0], call.model_served or plan.models[0]}:
            model = self.config.model(name)
            if model is not None and model.deprecation is not None:
                headers.update(shaping.deprecation_headers(model))
        if call.cache is not None:
            headers.setdefault(shaping.CACHE_HEADER, call.cache)
        return headers

    async def _first_of(
        self,
        call: Call,
        ticket: Ticket | None,
        plan: Plan,
        chunks: AsyncIterator[T],
        headers: dict[str, str],
    ) -> ServedStream[T]:
        served = await _first(chunks, headers)
        served.headers.update(self._extra_headers(ticket, plan, call))
        call.deferred = True  # the record is written when the stream ends
        return served

    async def _metered(
        self,
        call: Call,
        ticket: Ticket | None,
        chunks: AsyncIterator[C],
        model: str | None,
    ) -> AsyncIterator[C]:
        """Count a stream, cut it when it runs past its reservation, settle when it ends.

        A content chunk carries at least one token, so more content chunks than reserved
        output tokens means the backend ignored max_tokens: the stream is cut with a final
        ``finish_reason: "length"`` chunk. The record is written when the stream ends for
        any reason: completed, broken (error event), cut, or abandoned by the client.
        """
        limit = ticket.output_tokens if ticket is not None and ticket.bounds_output else None
        usage: Mapping[str, Any] | None = None
        pieces = 0
        text: list[str] = []  # the answer as sent, for the audit record (bounded)
        kept = 0
        outcome, code, started = "cancelled", None, False
        last: C | None = None
        try:
            async for chunk in chunks:
                if chunk.get("usage") and not chunk["choices"]:
                    usage = chunk["usage"]
                for choice in chunk["choices"]:
                    reason = choice.get("finish_reason")
                    if reason:
                        call.finish_reason = reason
                    if texts.is_piece(choice):
                        pieces += 1
                        if call.prompt_policy != "none" and kept < texts.AUDIT_TEXT_MAX:
                            piece = texts.piece_text(choice)
                            text.append(piece)
                            kept += len(piece)
                if limit is not None and pieces > limit:
                    call.finish_reason = "length"
                    usage = None
                    if last is not None:
                        yield shaping.cut_chunk(last)
                    outcome = "ok"
                    return
                if not started:
                    call.first_chunk()
                    started = True
                last = chunk
                yield chunk
            outcome = "ok"
        except GatewayError as exc:
            outcome, code = "error", exc.code
            raise
        except Exception:
            outcome, code = "error", "internal_error"
            raise
        finally:
            await aclose_quietly(chunks)
            if outcome == "cancelled" and any(k.startswith("blocked.") for k in call.guardrails):
                outcome, call.finish_reason = "ok", "content_filter"  # ended by the policy
            if usage is None and started:  # cut, broken or abandoned: what was produced
                usage = {"prompt_tokens": 0, "completion_tokens": pieces}
            # A cache replay used no model: nothing counts against the limits.
            with anyio.CancelScope(shield=True):
                await self._settle(call, ticket, usage if model is not None else None, model)
            if started:
                if call.prompt_policy != "none":
                    call.response = self._audit_text(call, "".join(text))
                call.finish(200, outcome, code)  # type: ignore[arg-type]

    # -- cache --------------------------------------------------------------------------

    async def _lookup(
        self,
        principal: Principal,
        plan: Plan,
        body: Mapping[str, Any],
        endpoint: Any,
        call: Call,
    ) -> Lookup:
        # Keyed on the canonical name (aliases share entries) or the route's name.
        keyed = _for_model(body, plan.cache_name)
        with call.stage("raygate.cache"):
            lookup = await self.cache.lookup(
                principal.team, keyed, endpoint=endpoint, mode=call.cache_mode
            )
        call.cache = lookup.status.value
        return lookup

    def _from_cache(self, plan: Plan, lookup: Lookup, response: Any) -> Served[Any]:
        headers = shaping.cache_headers(lookup, response)
        response["model"] = shaping.public_model(plan, str(response["model"]))
        return Served(response, headers)

    # -- lifecycle ----------------------------------------------------------------------

    async def readiness(self) -> dict[str, bool]:
        status = {name: await engine.ready() for name, engine in self.engines.items()}
        status["database"] = await self.keys.ping()
        status["state"] = await self.state.ping()
        return status

    async def aclose(self) -> None:
        for close in self._closers:
            await close()
        for observer in self.observers:
            await observer.aclose()
        if self.telemetry is not None:
            self.telemetry.shutdown()
        if self.audit is not None:
            await self.audit.aclose()
        await self.fair.aclose()  # before the state store: they may share a Redis client
        if self.admission is not None:
            await self.admission.aclose()
        for engine in self.engines.values():
            await engine.aclose()
        await self.keys.aclose()
        await self.state.aclose()


@dataclass(frozen=True, slots=True)
class _Kind:
    """What differs between chat and legacy completions on the request path."""

    task: Task
    call: Callable[[Engine, dict[str, Any]], Awaitable[Any]]
    stream: Callable[[Engine, dict[str, Any]], AsyncIterator[Any]]
    replay: Callable[[Any], AsyncIterator[Any]]
    shape: Callable[[Any], Any]
    record: Callable[[ResponseCache, Lookup, AsyncIterator[Any]], AsyncIterator[Any]]


def _shape_completion(result: Any) -> Any:
    return result


async def _embed(engine: Engine, body: dict[str, Any]) -> EmbeddingList:
    return await engine.embeddings(body)


_CHAT = _Kind(
    "chat",
    lambda engine, body: engine.chat(body),
    lambda engine, body: engine.chat_stream(body),
    replay_chat_stream,
    lambda result: shaping.shape_chat(shaping.as_chat(result)),
    lambda cache, lookup, chunks: cache.record_chat_stream(lookup, chunks),
)
_COMPLETION = _Kind(
    "completions",
    lambda engine, body: engine.completion(body),
    lambda engine, body: engine.completion_stream(body),
    replay_completion_stream,
    _shape_completion,
    lambda cache, lookup, chunks: cache.record_completion_stream(lookup, chunks),
)


def _log_attempt(attempt: Attempt) -> None:
    if attempt.result != "ok":
        log.warning("model %s try %d: %s", attempt.model, attempt.number, attempt.result)


def _for_model(body: Mapping[str, Any], model: str) -> dict[str, Any]:
    request = {**body, "model": model}
    request.pop("stream_options", None)
    return request


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
