"""A loopback AWS Bedrock Runtime that speaks the real wire format (tests only).

What makes it worth trusting:

* It verifies SigV4 itself, from the SigV4 specification rather than with botocore's signer
  (the adapter signs with botocore, so an independent check is what catches encoding
  mistakes): canonical URI re-encoded from the raw path as received, canonical query and
  headers, payload hash, credential scope (date/region/bedrock/aws4_request), X-Amz-Date
  freshness, and the session token of temporary credentials. Failures answer the way AWS
  does: 403 with ``x-amzn-ErrorType`` and ``{"message": ...}``.
* ``converse-stream`` answers real ``application/vnd.amazon.eventstream`` frames with correct
  CRCs, written out in small pieces so that frames straddle network reads.
* ``POST /`` is an STS endpoint for ``AssumeRoleWithWebIdentity`` (point
  ``AWS_ENDPOINT_URL_STS`` here): it issues temporary credentials that the Bedrock routes
  then accept, so the whole web-identity federation path can be tested offline.

Behaviours are those of `provider_contract.Behaviour`, plus ``multi_tool_call`` (a text
block then two tool calls, each streamed as partial JSON), ``stream_exception`` (a few
events, then an exception event of type ``stream_exception_type``), ``stream_corrupt`` (one
payload bit flipped), ``stream_truncated`` (the connection ends mid-frame) and
``stream_unfinished`` (it ends between frames, before ``messageStop``); ``fail_with``
scripts any Bedrock error response.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import socket
import struct
import threading
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, unquote

import orjson
import uvicorn
from botocore.credentials import Credentials
from provider_contract import Received
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from models.engines.bedrock import BedrockEngine
from serve.config import BedrockBackend

MODEL_ID = "anthropic.claude-3-5-haiku-20241022-v1:0"
ACCESS_KEY = "AKIDRAYGATEFAKE00001"
SECRET_KEY = "fake/secret+key/for/raygate/tests/0000"
WRONG_SECRET_KEY = "not-the-secret-the-fake-knows"
ANSWER = "Hello from bedrock"
EVENT_STREAM = "application/vnd.amazon.eventstream"
_ERROR_TYPE_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.bedrock/"


# --- event-stream encoding (the adapter only decodes) -------------------------------------

# Typed header values: str, bytes, bool and UUID are self-describing; integers and
# timestamps are given as (type name, value).
HeaderInput = str | bytes | bool | uuid.UUID | tuple[str, int]
_INT_TYPES = {"byte": (2, ">b"), "short": (3, ">h"), "integer": (4, ">i"), "long": (5, ">q")}


def encode_message(headers: Mapping[str, HeaderInput], payload: bytes) -> bytes:
    """One event-stream frame: prelude, prelude CRC, headers, payload, message CRC."""
    encoded = b"".join(_encode_header(name, value) for name, value in headers.items())
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def _encode_header(name: str, value: HeaderInput) -> bytes:
    raw_name = name.encode()
    head = struct.pack(">B", len(raw_name)) + raw_name
    if isinstance(value, bool):
        return head + struct.pack(">B", 0 if value else 1)
    if isinstance(value, str):
        raw = value.encode()
        return head + struct.pack(">BH", 7, len(raw)) + raw
    if isinstance(value, bytes):
        return head + struct.pack(">BH", 6, len(value)) + value
    if isinstance(value, uuid.UUID):
        return head + struct.pack(">B", 9) + value.bytes
    kind, number = value
    if kind == "timestamp":
        return head + struct.pack(">Bq", 8, number)
    code, fmt = _INT_TYPES[kind]
    return head + struct.pack(">B", code) + struct.pack(fmt, number)


def event_frame(event_type: str, payload: Mapping[str, Any]) -> bytes:
    # Bedrock pads every event with a random "p" field (hides token lengths on the wire).
    body = {**payload, "p": secrets.token_urlsafe(8)}
    headers = {":event-type": event_type, ":content-type": "application/json"}
    return encode_message({**headers, ":message-type": "event"}, orjson.dumps(body))


def exception_frame(exception_type: str, message: str) -> bytes:
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_message(headers, orjson.dumps({"message": message}))


# --- SigV4 verification, written from the specification ----------------------------------

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def uri_encode(text: str, *, keep_slash: bool = False) -> str:
    """SigV4's UriEncode: every byte but the unreserved ones as %XX (upper-case hex)."""
    out = []
    for byte in text.encode():
        if byte in _UNRESERVED or (keep_slash and byte == 0x2F):
            out.append(chr(byte))
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


@dataclass(frozen=True)
class SignatureFailure:
    error_type: str
    message: str


@dataclass
class SigV4Verifier:
    """Checks AWS4-HMAC-SHA256 Authorization headers for one region and service."""

    region: str
    service: str
    keys: dict[str, tuple[str, str | None]]  # access key -> (secret, session token or None)
    clock: Callable[[], float] = time.time
    max_skew_s: float = 300.0

    def check(
        self,
        method: str,
        raw_path: str,
        query: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        check_clock: bool = True,
    ) -> SignatureFailure | None:
        values: dict[str, list[str]] = {}
        for name, value in headers:
            values.setdefault(name.lower(), []).append(value)
        authorization = (values.get("authorization") or [""])[0]
        if not authorization.startswith("AWS4-HMAC-SHA256 "):
            return SignatureFailure(
                "MissingAuthenticationTokenException", "Missing Authentication Token"
            )
        fields = dict(
            part.strip().split("=", 1) for part in authorization[17:].split(",") if "=" in part
        )
        try:
            access_key, date, region, service, terminator = fields["Credential"].split("/")
            signed_names = fields["SignedHeaders"].split(";")
            signature = fields["Signature"]
        except (KeyError, ValueError):
            return SignatureFailure(
                "IncompleteSignatureException", "Authorization header is malformed."
            )
        amz_date = (values.get("x-amz-date") or [""])[0]
        if (date, region, service, terminator) != (
            amz_date[:8],
            self.region,
            self.service,
            "aws4_request",
        ):
            return SignatureFailure(
                "InvalidSignatureException",
                f"Credential should be scoped to a valid region and service, not "
                f"'{date}/{region}/{service}/{terminator}'.",
            )
        if check_clock:
            try:
                signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            except ValueError:
                return SignatureFailure("IncompleteSignatureException", "X-Amz-Date is invalid.")
            if abs(signed_at.timestamp() - self.clock()) > self.max_skew_s:
                return SignatureFailure(
                    "InvalidSignatureException", f"Signature expired: {amz_date} is out of range."
                )
        key = self.keys.get(access_key)
        if key is None:
            return SignatureFailure(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        secret, token = key
        required = {"host", "x-amz-date"} | ({"x-amz-security-token"} if token else set())
        if not required <= set(signed_names) or any(n not in values for n in signed_names):
            return SignatureFailure(
                "IncompleteSignatureException", "Signed headers are missing or incomplete."
            )
        if token is not None and values.get("x-amz-security-token") != [token]:
            return SignatureFailure(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        payload_hash = hashlib.sha256(body).hexdigest()
        declared = (values.get("x-amz-content-sha256") or [payload_hash])[0]
        if declared not in (payload_hash, "UNSIGNED-PAYLOAD"):
            return SignatureFailure("InvalidSignatureException", "The payload hash is wrong.")
        canonical = "\n".join(
            [
                method.upper(),
                uri_encode(raw_path or "/", keep_slash=True),  # the 2nd encoding (non-S3)
                _canonical_query(query),
                "".join(f"{n}:{_trim(values[n])}\n" for n in signed_names),
                ";".join(signed_names),
                declared,
            ]
        )
        scope = f"{date}/{region}/{service}/aws4_request"
        string_to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        signing_key = ("AWS4" + secret).encode()
        for part in (date, region, service, "aws4_request"):
            signing_key = hmac.new(signing_key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        if signed_names != sorted(signed_names) or not hmac.compare_digest(expected, signature):
            return SignatureFailure(
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you "
                "provided. Check your AWS Secret Access Key and signing method. Consult the "
                "service documentation for details.",
            )
        return None


def _canonical_query(query: str) -> str:
    pairs = []
    for item in query.split("&") if query else []:
        name, _, value = item.partition("=")
        pairs.append((uri_encode(unquote(name)), uri_encode(unquote(value))))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def _trim(values: list[str]) -> str:
    return ",".join(" ".join(v.split()) for v in values)


# --- the server ---------------------------------------------------------------------------


@dataclass
class BedrockReceived(Received):
    raw_headers: list[tuple[str, str]] = field(default_factory=list)
    raw_body: bytes = b""
    signature_failure: SignatureFailure | None = None


_HTTP_ERRORS: dict[str, tuple[int, str, str]] = {
    "error_400": (400, "ValidationException", "messages.0.content: text field is blank"),
    "error_403": (
        403,
        "AccessDeniedException",
        "You don't have access to the model with the specified model ID.",
    ),
    "error_429": (
        429,
        "ThrottlingException",
        "Too many requests, please wait before trying again.",
    ),
    "error_500": (500, "InternalServerException", "Internal failure at 10.0.0.7 (cell-4)"),
    "error_503": (503, "ServiceUnavailableException", "Bedrock is unable to process your request."),
}


@dataclass
class FakeBedrock:
    name: str = "bedrock"
    region: str = "us-east-1"
    received: list[Received] = field(default_factory=list)  # BedrockReceived items
    behaviour: str = "text"
    stream_exception_type: str = "throttlingException"
    chunk_size: int = 13  # stream bytes are written in pieces this small
    invoke_gate: int = 0  # >0: each /invoke waits until this many are in flight at once
    max_invoke_inflight: int = 0
    clock: Callable[[], float] = time.time
    port: int = 0
    keys: dict[str, tuple[str, str | None]] = field(
        default_factory=lambda: {ACCESS_KEY: (SECRET_KEY, None)}
    )
    _failure: tuple[int, str, str, dict[str, str]] | None = None
    _invoke_inflight: int = 0
    _gate: asyncio.Event | None = None
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    # --- the FakeProvider surface --------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def respond_with(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self._failure = None

    def fail_with(
        self, status: int, error_type: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        """Every following Bedrock request gets this error response."""
        self._failure = (status, error_type, message, headers or {})

    def backend(self, *, model: str = MODEL_ID, timeout_s: float = 5.0) -> BedrockBackend:
        return BedrockBackend(
            kind="bedrock",
            region=self.region,
            model=model,
            endpoint=self.endpoint,
            timeout_s=timeout_s,
        )

    def make_engine(
        self, *, valid_credentials: bool = True, timeout_s: float = 5.0, model: str = MODEL_ID
    ) -> BedrockEngine:
        secret = SECRET_KEY if valid_credentials else WRONG_SECRET_KEY
        return BedrockEngine(
            "bedrock-public",
            self.backend(model=model, timeout_s=timeout_s),
            credentials=Credentials(ACCESS_KEY, secret),
        )

    def assert_authenticated(self, received: Received) -> None:
        assert isinstance(received, BedrockReceived), received
        assert received.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=")
        raw_path, _, query = received.path.partition("?")
        failure = self.verifier().check(
            received.method,
            raw_path,
            query,
            received.raw_headers,
            received.raw_body,
            check_clock=False,
        )
        assert failure is None, failure

    def verifier(self) -> SigV4Verifier:
        return SigV4Verifier(self.region, "bedrock", self.keys, clock=self.clock)

    def bedrock_requests(self) -> list[BedrockReceived]:
        return [
            r
            for r in self.received
            if isinstance(r, BedrockReceived) and r.path.startswith("/model/")
        ]

    def last(self) -> BedrockReceived:
        return self.bedrock_requests()[-1]

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])]),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake bedrock did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    # --- request handling ----------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        raw_path = request.scope["raw_path"].decode()
        query = request.scope["query_string"].decode()
        raw_headers = [(k.decode(), v.decode()) for k, v in request.scope["headers"]]
        body = await request.body()
        record = BedrockReceived(
            method=request.method,
            path=raw_path + (f"?{query}" if query else ""),
            headers=dict(request.headers),
            body=None,
            raw_headers=raw_headers,
            raw_body=body,
        )
        self.received.append(record)
        if raw_path == "/":
            record.body = dict(parse_qsl(body.decode()))
            return self._sts(record.body)
        record.body = orjson.loads(body) if body else None
        failure = self.verifier().check(request.method, raw_path, query, raw_headers, body)
        if failure is not None:
            record.signature_failure = failure
            return _error(403, failure.error_type, failure.message)
        parts = raw_path.split("/")
        if len(parts) != 4 or parts[1] != "model":
            return _error(404, "UnknownOperationException", "Unknown operation")
        operation = parts[3]
        if self._failure is not None:
            status, error_type, message, headers = self._failure
            return _error(status, error_type, message, headers)
        if self.behaviour in _HTTP_ERRORS:
            status, error_type, message = _HTTP_ERRORS[self.behaviour]
            return _error(
                status, error_type, message, {"retry-after": "1"} if status == 429 else {}
            )
        if self.behaviour == "slow":
            await asyncio.sleep(2)
        if operation == "invoke":
            return await self._invoke(record.body)
        if operation == "converse":
            return _json(_converse_response(self.behaviour, record.body))
        if operation == "converse-stream":
            frames = _stream_frames(self.behaviour, record.body, self.stream_exception_type)
            return StreamingResponse(self._pieces(frames), media_type=EVENT_STREAM)
        return _error(404, "UnknownOperationException", "Unknown operation")

    async def _pieces(self, frames: list[bytes]) -> AsyncIterator[bytes]:
        data = b"".join(frames)
        for start in range(0, len(data), self.chunk_size):
            yield data[start : start + self.chunk_size]
            await asyncio.sleep(0)

    async def _invoke(self, body: dict[str, Any]) -> Response:
        self._invoke_inflight += 1
        self.max_invoke_inflight = max(self.max_invoke_inflight, self._invoke_inflight)
        try:
            if self.invoke_gate:
                if self._gate is None:
                    self._gate = asyncio.Event()
                if self._invoke_inflight >= self.invoke_gate:
                    self._gate.set()
                try:
                    await asyncio.wait_for(self._gate.wait(), timeout=5)
                except TimeoutError:
                    return _error(500, "InternalServerException", "invoke gate never opened")
            text = body["inputText"]
            return _json(
                {
                    "embedding": embedding_for(text, body.get("dimensions", 1024)),
                    "inputTextTokenCount": len(text.split()),
                }
            )
        finally:
            self._invoke_inflight -= 1

    def _sts(self, form: dict[str, str]) -> Response:
        if form.get("Action") != "AssumeRoleWithWebIdentity" or not form.get("WebIdentityToken"):
            return Response(b"<ErrorResponse/>", 400, media_type="text/xml")
        access_key = "ASIA" + secrets.token_hex(8).upper()
        secret = secrets.token_urlsafe(30)
        token = "FwoGZXIvYXdzE" + secrets.token_urlsafe(60)
        self.keys[access_key] = (secret, token)
        expires = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        role = form.get("RoleArn", "")
        session = form.get("RoleSessionName", "session")
        xml = f"""<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:raygate:gateway</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>{role.replace(":role/", ":assumed-role/")}/{session}</Arn>
      <AssumedRoleId>AROAFAKE:{session}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>{token}</SessionToken>
      <SecretAccessKey>{secret}</SecretAccessKey>
      <Expiration>{expires}</Expiration>
      <AccessKeyId>{access_key}</AccessKeyId>
    </Credentials>
    <Provider>arn:aws:iam::123456789012:oidc-provider/issuer.test.raygate</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"""
        return Response(xml.encode(), 200, media_type="text/xml")


def embedding_for(text: str, dimensions: int) -> list[float]:
    """A deterministic unit-ish vector per text, so tests can tell inputs apart."""
    digest = hashlib.sha256(text.encode()).digest()
    return [(digest[i % 32] - 128) / 128 for i in range(dimensions)]


def _json(payload: Any) -> Response:
    return Response(orjson.dumps(payload), 200, media_type="application/json")


def _error(
    status: int, error_type: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps({"message": message}),
        status,
        headers={"x-amzn-ErrorType": error_type + _ERROR_TYPE_SUFFIX, **(headers or {})},
        media_type="application/json",
    )


def _tools(body: dict[str, Any]) -> list[str]:
    return [t["toolSpec"]["name"] for t in (body.get("toolConfig") or {}).get("tools", [])]


def _forced_tool(body: dict[str, Any]) -> str | None:
    choice = (body.get("toolConfig") or {}).get("toolChoice") or {}
    return (choice.get("tool") or {}).get("name")


def _usage() -> dict[str, int]:
    return {"inputTokens": 11, "outputTokens": 7, "totalTokens": 18}


def _tool_use(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"toolUseId": "tooluse_" + secrets.token_hex(8), "name": name, "input": arguments}


def _blocks(behaviour: str, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The assistant's content blocks and stop reason for a behaviour."""
    if behaviour == "tool_call":
        return [{"toolUse": _tool_use(_tools(body)[0], {"city": "Tokyo"})}], "tool_use"
    if behaviour == "multi_tool_call":
        first, second = _tools(body)[:2]
        return [
            {"text": "Let me look both up."},
            {"toolUse": _tool_use(first, {"city": "Tokyo"})},
            {"toolUse": _tool_use(second, {"city": "Paris", "days": 2})},
        ], "tool_use"
    if behaviour == "json":
        forced = _forced_tool(body)
        if forced is not None:
            return [{"toolUse": _tool_use(forced, {"answer": 42})}], "tool_use"
        return [{"text": '{"answer": 42}'}], "end_turn"
    return [{"text": ANSWER}], "end_turn"


def _converse_response(behaviour: str, body: dict[str, Any]) -> dict[str, Any]:
    blocks, stop_reason = _blocks(behaviour, body)
    return {
        "output": {"message": {"role": "assistant", "content": blocks}},
        "stopReason": stop_reason,
        "usage": _usage(),
        "metrics": {"latencyMs": 42},
    }


def _split(text: str, parts: int) -> list[str]:
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _stream_frames(behaviour: str, body: dict[str, Any], exception_type: str) -> list[bytes]:
    frames = [event_frame("messageStart", {"role": "assistant"})]
    if behaviour == "stream_exception":
        frames.append(
            event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hel"}})
        )
        frames.append(exception_frame(exception_type, "The stream failed at 10.0.0.7."))
        return frames
    if behaviour in ("stream_corrupt", "stream_truncated", "stream_unfinished"):
        frames = _stream_frames("text", body, exception_type)
        if behaviour == "stream_truncated":  # the connection ends inside messageStop
            return [*frames[:-2], frames[-2][: len(frames[-2]) // 2]]
        if behaviour == "stream_unfinished":  # whole frames, but no messageStop/metadata
            return frames[:-2]
        damaged = bytearray(frames[2])
        damaged[-8] ^= 0x01  # one bit of the payload: only the message CRC can tell
        return [*frames[:2], bytes(damaged), *frames[3:]]
    blocks, stop_reason = _blocks(behaviour, body)
    for index, block in enumerate(blocks):
        if "text" in block:
            for piece in _split(block["text"], 3):
                delta = {"contentBlockIndex": index, "delta": {"text": piece}}
                frames.append(event_frame("contentBlockDelta", delta))
        else:
            use = block["toolUse"]
            start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
            frames.append(
                event_frame("contentBlockStart", {"contentBlockIndex": index, "start": start})
            )
            for piece in _split(orjson.dumps(use["input"]).decode(), 3):
                delta = {"contentBlockIndex": index, "delta": {"toolUse": {"input": piece}}}
                frames.append(event_frame("contentBlockDelta", delta))
        frames.append(event_frame("contentBlockStop", {"contentBlockIndex": index}))
    frames.append(event_frame("messageStop", {"stopReason": stop_reason}))
    frames.append(event_frame("metadata", {"usage": _usage(), "metrics": {"latencyMs": 42}}))
    return frames
