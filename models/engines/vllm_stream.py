"""Ray Serve LLM's ``LLMServer`` answers as raygate's OpenAI dicts and `GatewayError`s.

``LLMServer.chat`` / ``completions`` / ``embeddings`` return an async generator of:

- one response object (``ChatCompletionResponse``, ``CompletionResponse``,
  ``EmbeddingResponse``) when not streaming;
- lists of ``"data: {json}\\n\\n"`` strings when streaming (the stream batcher), the last
  event ``"data: [DONE]\\n\\n"``; vLLM writes an error met mid-stream as a ``data:`` event
  holding an ``error`` object;
- an ``ErrorResponse`` (``{"error": {"message", "type", "param", "code": <HTTP status>}}``)
  in place of either, alone or inside a stream batch, when the engine refuses a request.

Pure translation: nothing here imports vLLM or Ray (objects are read through
``model_dump``), so it is tested on CPU; the vLLM request classes are passed in.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterator, Mapping
from typing import Any, Literal, Protocol, TypeVar

import orjson
from pydantic import ValidationError

from models.engine import Request
from serve.errors import (
    GatewayError,
    InvalidRequest,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)

__all__ = [
    "Items",
    "error_from",
    "response_dict",
    "stream_chunks",
    "vllm_request",
]

Items = Literal["choices", "data"]
_DONE = "[DONE]"
_MESSAGE_LIMIT = 500


class _Validating(Protocol):
    """A pydantic model class (vLLM's protocol requests are)."""

    @classmethod
    def model_validate(cls, obj: Any) -> Any: ...


R = TypeVar("R", bound=_Validating)


def vllm_request(cls: type[R], request: Request, model_id: str, *, stream: bool | None) -> R:
    """A validated vLLM request for the model this replica serves (``model_id``).

    ``stream`` None leaves the request's own (embeddings); a stream always asks for usage
    (the gateway meters it and drops the usage chunk when the caller did not ask)."""
    body: dict[str, Any] = {**request, "model": model_id}
    if stream is True:
        body["stream"] = True
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    elif stream is False:
        body["stream"] = False
        body.pop("stream_options", None)
    try:
        validated: R = cls.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": str(exc)}
        param = ".".join(str(p) for p in first["loc"]) or None
        raise InvalidRequest(f"{param or 'request'}: {first['msg']}", param=param) from None
    return validated


def error_from(error: Mapping[str, Any]) -> GatewayError:
    """The gateway error for a vLLM error object (``ErrorResponse.error``); ``code`` is
    the HTTP status. Client errors keep vLLM's message; server errors hide it."""
    status = error.get("code")
    status = status if isinstance(status, int) else 500
    message = str(error.get("message") or "The model rejected the request.")[:_MESSAGE_LIMIT]
    param = error.get("param")
    param = str(param) if param is not None else None
    if status in (400, 422):
        return InvalidRequest(message, param=param)
    if status == 404:
        return NotFound(message, param=param)
    if status == 413:
        return PayloadTooLarge(message, param=param)
    if status == 429:
        return RateLimited(
            "The model is at capacity; retry shortly.",
            code="model_at_capacity",
            headers={"retry-after": "1"},
        )
    if status == 503:
        return Overloaded("The model is overloaded; retry shortly.")
    if status in (408, 504):
        return UpstreamTimeout("The model timed out.")
    return UpstreamError(f"The model failed (HTTP {status}).")


def _plain(item: object) -> object:
    dump = getattr(item, "model_dump", None)
    return dump(mode="json") if callable(dump) else item


def _error_of(payload: Mapping[str, Any]) -> Mapping[str, Any] | None:
    error = payload.get("error")
    if isinstance(error, Mapping):
        return error
    if payload.get("object") == "error":  # vLLM's older flat error event
        return payload
    return None


def _answer(payload: object, model: str, items: Items, what: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise UpstreamError(f"The model answered with an unexpected {what}.")
    error = _error_of(payload)
    if error is not None:
        raise error_from(error)
    entries = payload.get(items)
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise UpstreamError(f"The model answered with an unexpected {what}.")
    if items == "choices":
        for choice in entries:
            choice.setdefault("finish_reason", None)
            choice.setdefault("logprobs", None)
    payload["model"] = model
    return payload


def response_dict(item: object, model: str, items: Items = "choices") -> dict[str, Any]:
    """A non-streaming answer (response object or ``ErrorResponse``) as a raygate dict."""
    return _answer(_plain(item), model, items, "body")


def _events(text: str) -> Iterator[object]:
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == _DONE:
            yield _DONE
            return
        try:
            yield orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamError("The model sent a malformed stream event.") from None


def _batch_events(batch: object) -> Iterator[object]:
    for item in batch if isinstance(batch, list) else [batch]:
        if isinstance(item, str):
            yield from _events(item)
        else:
            yield _plain(item)  # an ErrorResponse (or a stream response object)


async def stream_chunks(
    batches: AsyncIterable[object], model: str
) -> AsyncIterator[dict[str, Any]]:
    """Stream chunks from LLMServer's batches, in order, until ``[DONE]``; an error event
    raises its `GatewayError` (chunks before it have been yielded)."""
    async for batch in batches:
        for event in _batch_events(batch):
            if event == _DONE:
                return
            yield _answer(event, model, "choices", "stream event")
