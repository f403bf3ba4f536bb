"""Engine for any chat model on AWS Bedrock (the Converse API) and Titan text embeddings.

Runs inside the ingress like the OpenAI-compatible engine: each request is one signed HTTPS
call. Translation lives in `converse_format`, stream framing in `aws_eventstream`, and
credentials and SigV4 in `aws_signing`; this module only does the HTTP and maps AWS errors
onto the gateway's error hierarchy (4xx messages pass through, 5xx and auth details never do).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import struct
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from botocore.credentials import Credentials

from models.engine import Request
from models.engines.aws_eventstream import EventStreamDecoder, EventStreamError
from models.engines.aws_signing import CredentialProvider, CredentialsUnavailable, sign_headers
from models.engines.converse_format import StreamTranslator, from_converse, to_converse
from serve.config import BedrockBackend
from serve.errors import (
    GatewayError,
    InvalidRequest,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from serve.openai_types import (
    ChatCompletion,
    ChatCompletionChunk,
    Completion,
    Embedding,
    EmbeddingList,
)

__all__ = ["BedrockEngine", "bedrock_error"]

logger = logging.getLogger(__name__)

SERVICE = "bedrock"  # the SigV4 signing name of bedrock-runtime
EMBEDDING_CONCURRENCY = 16  # Titan embeds one text per call: fan out, but not unboundedly
_JSON_HEADERS = {"content-type": "application/json", "accept": "application/json"}
_STREAM_HEADERS = {
    "content-type": "application/json",
    "accept": "application/vnd.amazon.eventstream",
}
_EVENT_STREAM = "application/vnd.amazon.eventstream"


class BedrockEngine:
    def __init__(
        self,
        public_name: str,
        backend: BedrockBackend,
        *,
        credentials: Credentials | None = None,
    ) -> None:
        self._public_name = public_name
        self._region = backend.region
        endpoint = backend.endpoint or f"https://bedrock-runtime.{backend.region}.amazonaws.com"
        # Model ids contain ':' and ARNs contain '/': encode every reserved character once
        # (as botocore does); the signer encodes the path a second time for SigV4.
        model_path = f"{endpoint.rstrip('/')}/model/{quote(backend.model, safe='')}"
        self._converse_url = f"{model_path}/converse"
        self._stream_url = f"{model_path}/converse-stream"
        self._invoke_url = f"{model_path}/invoke"
        self._titan_v1 = "titan-embed-text-v1" in backend.model
        self._credentials = CredentialProvider(credentials, profile=backend.profile)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(backend.timeout_s, connect=min(5.0, backend.timeout_s)),
            limits=httpx.Limits(
                max_connections=backend.max_connections,
                max_keepalive_connections=backend.max_connections,
            ),
        )

    async def _signed(self, url: str, body: bytes, headers: Mapping[str, str]) -> httpx.Request:
        try:
            credentials = await self._credentials.frozen()
        except CredentialsUnavailable as exc:
            logger.warning("bedrock %s: no AWS credentials: %s", self._public_name, exc)
            raise UpstreamError(
                "The model backend could not be authenticated.", code="upstream_auth_failed"
            ) from None
        signed = sign_headers(
            credentials,
            service=SERVICE,
            region=self._region,
            method="POST",
            url=url,
            headers=headers,
            body=body,
        )
        return self._client.build_request("POST", url, content=body, headers=signed)

    async def _post_json(self, url: str, body: Mapping[str, Any]) -> dict[str, Any]:
        request = await self._signed(url, orjson.dumps(body), _JSON_HEADERS)
        try:
            response = await self._client.send(request)
        except httpx.TimeoutException:
            raise UpstreamTimeout("The model backend timed out.") from None
        except httpx.HTTPError:
            raise UpstreamError("The model backend could not be reached.") from None
        if response.status_code != 200:
            raise bedrock_error(response.status_code, response.headers, response.content)
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise UpstreamError("The model backend answered with malformed JSON.") from None
        if not isinstance(payload, dict):
            raise UpstreamError("The model backend answered with an unexpected body.")
        return payload

    async def chat(self, request: Request) -> ChatCompletion:
        converse = to_converse(request)
        response = await self._post_json(self._converse_url, converse.body)
        try:
            return from_converse(
                response,
                model=self._public_name,
                completion_id=_completion_id(),
                created=int(time.time()),
                json_tool=converse.json_tool,
            )
        except (KeyError, TypeError, AttributeError):
            raise UpstreamError("The model backend answered with an unexpected body.") from None

    async def chat_stream(self, request: Request) -> AsyncIterator[ChatCompletionChunk]:
        converse = to_converse(request)
        translator = StreamTranslator(
            model=self._public_name,
            completion_id=_completion_id(),
            created=int(time.time()),
            json_tool=converse.json_tool,
        )
        http_request = await self._signed(
            self._stream_url, orjson.dumps(converse.body), _STREAM_HEADERS
        )
        try:
            response = await self._client.send(http_request, stream=True)
        except httpx.TimeoutException:
            raise UpstreamTimeout("The model backend timed out.") from None
        except httpx.HTTPError:
            raise UpstreamError("The model backend could not be reached.") from None
        try:
            if response.status_code != 200:
                content = await _read(response)
                raise bedrock_error(response.status_code, response.headers, content)
            if not response.headers.get("content-type", "").startswith(_EVENT_STREAM):
                raise UpstreamError("The model backend answered with an unexpected stream.")
            decoder = EventStreamDecoder()
            async for data in response.aiter_bytes():
                for message in decoder.feed(data):
                    for chunk in _stream_chunks(translator, message.headers, message.payload):
                        yield chunk
            decoder.close()
        except EventStreamError as exc:
            logger.warning("bedrock %s: corrupt event stream: %s", self._public_name, exc)
            raise UpstreamError("The model backend sent a corrupt stream.") from None
        except httpx.TimeoutException:
            raise UpstreamTimeout("The model backend timed out.") from None
        except httpx.HTTPError:
            raise UpstreamError("The model backend connection failed.") from None
        finally:
            await response.aclose()
        if not translator.finished:
            raise UpstreamError("The model backend ended the stream early.")

    async def completion(self, request: Request) -> Completion:
        raise _unsupported("completions")

    async def completion_stream(self, request: Request) -> AsyncIterator[Completion]:
        raise _unsupported("completions")
        yield  # pragma: no cover - makes this an async generator

    async def embeddings(self, request: Request) -> EmbeddingList:
        texts = _embedding_inputs(request.get("input"))
        dimensions = request.get("dimensions")
        if self._titan_v1 and dimensions is not None:
            raise InvalidRequest("This model does not support dimensions.", param="dimensions")
        limit = asyncio.Semaphore(EMBEDDING_CONCURRENCY)

        async def embed(text: str) -> tuple[list[float], int]:
            body: dict[str, Any] = {"inputText": text}
            if not self._titan_v1:  # v1 rejects every field but inputText
                body["normalize"] = True
                if dimensions is not None:
                    body["dimensions"] = dimensions
            async with limit:
                payload = await self._post_json(self._invoke_url, body)
            vector = payload.get("embedding")
            if not isinstance(vector, list):
                raise UpstreamError("The model backend answered with an unexpected body.")
            return vector, int(payload.get("inputTextTokenCount") or 0)

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(embed(text)) for text in texts]
        except ExceptionGroup as failures:
            raise failures.exceptions[0] from None  # the first failure; the rest were cancelled
        results = [task.result() for task in tasks]
        as_base64 = request.get("encoding_format") == "base64"
        data: list[Embedding] = [
            {
                "object": "embedding",
                "index": i,
                "embedding": _base64_floats(vector) if as_base64 else vector,
            }
            for i, (vector, _) in enumerate(results)
        ]
        tokens = sum(count for _, count in results)
        return {
            "object": "list",
            "data": data,
            "model": self._public_name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    async def ready(self) -> bool:
        return True  # a remote service: its health shows per request

    async def aclose(self) -> None:
        await self._client.aclose()


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def _unsupported(task: str) -> InvalidRequest:
    return InvalidRequest(
        f"This model does not support {task}.", param="model", code="unsupported_task"
    )


async def _read(response: httpx.Response) -> bytes:
    try:
        return await response.aread()
    except httpx.HTTPError:
        return b""


def _stream_chunks(
    translator: StreamTranslator, headers: Mapping[str, Any], payload: bytes
) -> list[ChatCompletionChunk]:
    message_type = headers.get(":message-type")
    if message_type == "exception":
        raise _stream_exception(str(headers.get(":exception-type", "")), payload)
    if message_type == "error":
        logger.warning("bedrock stream error %s", headers.get(":error-code"))
        raise UpstreamError("The model backend failed during the stream.")
    event = headers.get(":event-type")
    if message_type != "event" or not isinstance(event, str):
        return []
    try:
        body = orjson.loads(payload) if payload else {}
        return translator.translate(event, body)
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError):
        raise UpstreamError("The model backend sent a malformed stream event.") from None


def _embedding_inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise InvalidRequest(
        "This model embeds text: input must be a string or a list of strings.", param="input"
    )


def _base64_floats(vector: list[float]) -> str:
    """OpenAI's base64 encoding: little-endian float32s."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


# Error types by the name Bedrock sends in x-amzn-ErrorType (HTTP) or :exception-type
# (streams, camelCase there); compared case-insensitively.
_AUTH_ERRORS = {
    "accessdeniedexception",
    "unrecognizedclientexception",
    "invalidsignatureexception",
    "incompletesignatureexception",
    "expiredtokenexception",
    "missingauthenticationtokenexception",
    "signaturedoesnotmatch",
}
_RATE_ERRORS = {"throttlingexception", "servicequotaexceededexception", "toomanyrequestsexception"}
_TIMEOUT_ERRORS = {"modeltimeoutexception"}
_UNAVAILABLE_ERRORS = {"modelnotreadyexception", "serviceunavailableexception"}
_CALLER_ERRORS = {"validationexception"}


def bedrock_error(status: int, headers: Mapping[str, str], content: bytes) -> GatewayError:
    """Map a Bedrock error response (``x-amzn-ErrorType`` + ``{"message"}``) to a gateway
    error. Validation messages pass through (truncated); everything else is generic."""
    error_type = headers.get("x-amzn-errortype", "").split(":", 1)[0].strip()
    kind = error_type.lower()
    retry_after = headers.get("retry-after")
    message = _message(content)
    if kind:
        logger.info("bedrock error %s (HTTP %s)", error_type, status)
    if kind in _AUTH_ERRORS or (not kind and status in (401, 403)):
        return _auth_failed()
    if kind in _RATE_ERRORS or (not kind and status == 429):
        return RateLimited(
            "The model backend is rate limiting requests.",
            code="upstream_rate_limited",
            headers={"retry-after": retry_after} if retry_after else None,
        )
    if kind in _TIMEOUT_ERRORS or (not kind and status == 408):
        return UpstreamTimeout("The model backend timed out.")
    if kind in _UNAVAILABLE_ERRORS:
        return UpstreamError("The model backend is unavailable.", code="upstream_unavailable")
    if kind == "resourcenotfoundexception":
        # The model id comes from the gateway's config, not from the caller.
        return UpstreamError("The configured model was not found on the model backend.")
    if kind in _CALLER_ERRORS or (not kind and status in (400, 413, 422)):
        return InvalidRequest(
            message or "The model backend rejected the request.", code="upstream_invalid_request"
        )
    return UpstreamError(f"The model backend failed (HTTP {status}).")


def _stream_exception(exception_type: str, payload: bytes) -> GatewayError:
    """Exceptions inside an event stream carry the type in a header and JSON as payload."""
    error = bedrock_error(500, {"x-amzn-errortype": exception_type}, payload)
    if type(error) is UpstreamError and error.code == "upstream_error":
        return UpstreamError("The model backend failed during the stream.")
    return error


def _message(content: bytes) -> str:
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(body, dict):
        return ""
    message = body.get("message") or body.get("Message") or ""
    return str(message)[:500]


def _auth_failed() -> UpstreamError:
    return UpstreamError(
        "The model backend rejected the gateway's credentials.", code="upstream_auth_failed"
    )
