"""A loopback Vertex AI that speaks the real wire format, with a real OAuth token endpoint.

Serves ``:generateContent``, ``:streamGenerateContent?alt=sse`` and ``:predict`` under
``/v1/projects/{project}/locations/{location}/publishers/google/models/{model}``, answering
GenerateContentResponse / prediction JSON shaped as Vertex answers it (candidates with
safety ratings, usage metadata, modelVersion, responseId; ``index`` omitted for the first
candidate, as proto3 JSON does). Authentication is the real service-account flow:
`make_engine` writes a service-account JSON whose ``token_uri`` points here, google-auth
signs a JWT assertion with its private key, ``/token`` verifies the signature with the
public key and issues an access token, and the Vertex routes accept only tokens issued
here and not expired or revoked (401 UNAUTHENTICATED otherwise). Invalid credentials are
what happens when a key is deleted or replaced: the file's key does not match the one
registered for the service account, and the token endpoint answers 400 invalid_grant.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs

import jwt
import orjson
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from provider_contract import Behaviour, Received
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from models.engines.vertex import VertexEngine
from serve.config import VertexBackend

# Beyond the shared behaviours, for this provider's own tests.
VertexBehaviour = (
    Behaviour
    | Literal[
        "break_mid_stream",  # one text event, then a Google error object in the stream
        "truncated_stream",  # text events, then the connection ends without finishReason
        "safety",  # the answer is blocked: finishReason SAFETY, no content
        "blocked_prompt",  # the prompt is blocked: no candidates, promptFeedback.blockReason
        "error_429_retry_info",  # 429 without Retry-After, RetryInfo.retryDelay in the body
    ]
)

SERVICE_ACCOUNT = "raygate-test@raygate-test.iam.gserviceaccount.com"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# google-auth signs assertions for Google's token endpoint whatever token_uri says, and
# Google checks that audience: so does this fake.
TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
METHODS = frozenset({"generateContent", "streamGenerateContent", "predict"})
CHAT_MODELS = frozenset({"gemini-2.5-flash", "gemini-2.5-pro"})
EMBEDDING_MODELS = {"text-embedding-005": 250, "gemini-embedding-001": 1}  # max instances
TEXT = "Hello from vertex"
SAFETY_CATEGORIES = (
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
)
UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)


def _google_error(status: int, google_status: str, message: str, **extra: Any) -> Response:
    body = {"error": {"code": status, "message": message, "status": google_status, **extra}}
    return Response(orjson.dumps(body), status, media_type="application/json")


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@dataclass
class FakeVertex:
    name: str = "vertex"
    project: str = "raygate-test"
    location: str = "europe-west4"
    model: str = "gemini-2.5-flash"
    public_name: str = "gemini-test"
    token_lifetime_s: int = 3600
    received: list[Received] = field(default_factory=list)
    issued: dict[str, float] = field(default_factory=dict)  # access token -> expiry (monotonic)
    port: int = 0
    _behaviour: VertexBehaviour = "text"
    _key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    _key_id: str = field(default_factory=lambda: secrets.token_hex(20))
    _dir: Path | None = None
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    # -- the FakeProvider surface ---------------------------------------------------------

    def respond_with(self, behaviour: VertexBehaviour) -> None:
        self._behaviour = behaviour

    def make_engine(
        self,
        *,
        valid_credentials: bool = True,
        timeout_s: float = 5.0,
        model: str | None = None,
        project: str | None = None,
    ) -> VertexEngine:
        backend = VertexBackend(
            kind="vertex",
            project=project or self.project,
            location=self.location,
            model=model or self.model,
            endpoint=self.base_url,
            credentials_file=str(self.service_account_file(valid=valid_credentials)),
            timeout_s=timeout_s,
        )
        return VertexEngine(self.public_name, backend)

    def assert_authenticated(self, received: Received) -> None:
        authorization = received.headers.get("authorization", "")
        assert authorization.startswith("Bearer "), authorization[:20]
        token = authorization.removeprefix("Bearer ")
        assert token in self.issued, "the bearer token was not issued by the token endpoint"

    # -- helpers for tests ----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    def model_path(self, model: str | None = None) -> str:
        return (
            f"/v1/projects/{self.project}/locations/{self.location}"
            f"/publishers/google/models/{model or self.model}"
        )

    def token_requests(self) -> list[Received]:
        return [r for r in self.received if r.path == "/token"]

    def api_requests(self) -> list[Received]:
        return [r for r in self.received if r.path != "/token"]

    def last(self) -> Received:
        return self.api_requests()[-1]

    def reset(self) -> None:
        self._behaviour = "text"
        self.token_lifetime_s = 3600
        self.received.clear()

    def revoke_tokens(self) -> None:
        """As when a key is rotated: every token issued so far stops working."""
        self.issued.clear()

    def service_account_file(self, *, valid: bool = True) -> Path:
        """A service-account key file; the invalid one carries a key Google does not know."""
        assert self._dir is not None, "start() the fake first"
        path = self._dir / ("sa.json" if valid else "sa-revoked.json")
        if not path.exists():
            key = self._key if valid else rsa.generate_private_key(65537, 2048)
            info = {
                "type": "service_account",
                "project_id": self.project,
                "private_key_id": self._key_id,
                "private_key": _pem(key),
                "client_email": SERVICE_ACCOUNT,
                "client_id": "103000000000000000000",
                "auth_uri": "https://accounts.google.com/o/oauth2/auth",
                "token_uri": self.token_uri,
                "universe_domain": "googleapis.com",
            }
            path.write_text(json.dumps(info))
        return path

    # -- server ---------------------------------------------------------------------------

    def start(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="fake-vertex-"))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake vertex did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/token", self._token, methods=["POST"]),
                Route(
                    "/v1/projects/{project}/locations/{location}/publishers/google/models/{target}",
                    self._vertex,
                    methods=["POST"],
                ),
            ]
        )

    async def _record(self, request: Request, body: Any) -> None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        self.received.append(Received(request.method, path, dict(request.headers), body))

    async def _token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        await self._record(request, form)
        if form.get("grant_type") != JWT_BEARER or "assertion" not in form:
            return self._oauth_error("unsupported_grant_type", "Invalid grant_type.")
        assertion = form["assertion"]
        try:
            if jwt.get_unverified_header(assertion).get("kid") != self._key_id:
                return self._oauth_error("invalid_grant", "Invalid JWT Signature.")
            claims = jwt.decode(
                assertion,
                self._key.public_key(),
                algorithms=["RS256"],
                audience=TOKEN_AUDIENCE,
                issuer=SERVICE_ACCOUNT,
                options={"require": ["exp", "iat", "aud", "iss"]},
            )
        except jwt.InvalidSignatureError:
            return self._oauth_error("invalid_grant", "Invalid JWT Signature.")
        except jwt.PyJWTError as exc:
            return self._oauth_error("invalid_grant", f"Invalid JWT: {exc}")
        if CLOUD_PLATFORM not in str(claims.get("scope", "")).split():
            return self._oauth_error("invalid_scope", "Invalid OAuth scope or ID token audience.")
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        self.issued[token] = time.monotonic() + self.token_lifetime_s
        answer = {
            "access_token": token,
            "expires_in": self.token_lifetime_s,
            "token_type": "Bearer",
        }
        return Response(orjson.dumps(answer), media_type="application/json")

    @staticmethod
    def _oauth_error(error: str, description: str) -> Response:
        body = orjson.dumps({"error": error, "error_description": description})
        return Response(body, 400, media_type="application/json")

    async def _vertex(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        await self._record(request, body)
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.issued.get(token, 0.0) < time.monotonic():
            return _google_error(401, "UNAUTHENTICATED", UNAUTHENTICATED)
        project = request.path_params["project"]
        location = request.path_params["location"]
        model, _, method = request.path_params["target"].partition(":")
        resource = f"projects/{project}/locations/{location}/publishers/google/models/{model}"
        if project != self.project:
            return _google_error(
                403,
                "PERMISSION_DENIED",
                f"Permission 'aiplatform.endpoints.predict' denied on resource "
                f"'//aiplatform.googleapis.com/{resource}' (or it may not exist).",
            )
        known = CHAT_MODELS if method != "predict" else EMBEDDING_MODELS
        if model not in known or method not in METHODS:
            return _google_error(
                404,
                "NOT_FOUND",
                f"Publisher Model `{resource}` was not found or your project does not have "
                "access to it.",
            )
        if body is None or not isinstance(body, dict):
            return _google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        behaviour = self._behaviour
        if behaviour == "slow":
            await asyncio.sleep(2)
        failure = self._failure(behaviour)
        if failure is not None:
            return failure
        if method == "predict":
            return self._predict(model, body)
        if method == "streamGenerateContent":
            if request.query_params.get("alt") != "sse":
                return _google_error(400, "INVALID_ARGUMENT", "This fake serves only alt=sse.")
            return StreamingResponse(
                self._stream(behaviour, body, model), media_type="text/event-stream"
            )
        return Response(
            orjson.dumps(_generate(behaviour, body, model)), media_type="application/json"
        )

    @staticmethod
    def _failure(behaviour: VertexBehaviour) -> Response | None:
        if behaviour == "error_400":
            return _google_error(
                400,
                "INVALID_ARGUMENT",
                "Unable to submit request because it has an empty text parameter. Add a value "
                "to the parameter and try again.",
            )
        if behaviour == "error_403":
            return _google_error(
                403,
                "PERMISSION_DENIED",
                "Vertex AI API has not been used in project raygate-test before or it is disabled.",
            )
        if behaviour == "error_429":
            response = _google_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Resource exhausted. Please try again later. Please refer to "
                "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for "
                "more details.",
            )
            response.headers["retry-after"] = "1"
            return response
        if behaviour == "error_429_retry_info":
            retry_info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.5s"}
            return _google_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for aiplatform.googleapis.com/generate_content_requests.",
                details=[retry_info],
            )
        if behaviour == "error_500":
            return _google_error(500, "INTERNAL", "Internal error encountered.")
        if behaviour == "error_503":
            return _google_error(
                503, "UNAVAILABLE", "The model is overloaded. Please try again later."
            )
        return None

    async def _stream(
        self, behaviour: VertexBehaviour, body: dict[str, Any], model: str
    ) -> AsyncIterator[bytes]:
        response_id = secrets.token_urlsafe(16)
        final = _generate(behaviour, body, model, response_id=response_id)
        if behaviour in ("tool_call", "safety", "blocked_prompt"):
            yield _event(final)  # function calls and blocks arrive whole, in one event
            return
        text = final["candidates"][0]["content"]["parts"][0]["text"]
        pieces = [text[:5], text[5:10], text[10:]]
        count = len(final["candidates"])
        for number, piece in enumerate(pieces):
            last = number == len(pieces) - 1
            if behaviour == "break_mid_stream" and number == 1:
                yield _event(
                    {
                        "error": {
                            "code": 500,
                            "message": "Internal error encountered.",
                            "status": "INTERNAL",
                        }
                    }
                )
                return
            if behaviour == "truncated_stream" and last:
                return
            candidates = [
                _candidate(position, [{"text": piece}], "STOP" if last else None)
                for position in range(count)
            ]
            usage = (
                final["usageMetadata"]
                if last
                else {
                    "promptTokenCount": final["usageMetadata"]["promptTokenCount"],
                    "totalTokenCount": final["usageMetadata"]["promptTokenCount"],
                    "trafficType": "ON_DEMAND",
                }
            )
            yield _event(_envelope(candidates, usage, model, response_id))
            await asyncio.sleep(0)

    def _predict(self, model: str, body: dict[str, Any]) -> Response:
        instances = body.get("instances") or []
        limit = EMBEDDING_MODELS[model]
        if not instances or len(instances) > limit:
            return _google_error(
                400,
                "INVALID_ARGUMENT",
                f"{len(instances)} instances are given, but the model accepts 1 to {limit}.",
            )
        dimensions = (body.get("parameters") or {}).get("outputDimensionality", 768)
        predictions = [
            {
                "embeddings": {
                    "statistics": {
                        "truncated": False,
                        "token_count": len(str(instance["content"]).split()),
                    },
                    "values": fake_embedding(str(instance["content"]), dimensions),
                }
            }
            for instance in instances
        ]
        characters = sum(len(str(i["content"])) for i in instances)
        answer = {"predictions": predictions, "metadata": {"billableCharacterCount": characters}}
        return Response(orjson.dumps(answer), media_type="application/json")


def fake_embedding(text: str, dimensions: int) -> list[float]:
    """A deterministic vector in [-1, 1), different for different texts."""
    stream = b""
    counter = 0
    while len(stream) < dimensions:
        stream += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    return [round(byte / 128.0 - 1.0, 6) for byte in stream[:dimensions]]


def _safety_ratings(blocked: str | None = None) -> list[dict[str, Any]]:
    ratings = []
    for category in SAFETY_CATEGORIES:
        if category == blocked:
            ratings.append(
                {
                    "category": category,
                    "probability": "HIGH",
                    "probabilityScore": 0.93,
                    "severity": "HARM_SEVERITY_HIGH",
                    "severityScore": 0.88,
                    "blocked": True,
                }
            )
        else:
            ratings.append(
                {
                    "category": category,
                    "probability": "NEGLIGIBLE",
                    "probabilityScore": 0.02,
                    "severity": "HARM_SEVERITY_NEGLIGIBLE",
                    "severityScore": 0.01,
                }
            )
    return ratings


def _candidate(
    position: int, parts: list[dict[str, Any]] | None, finish: str | None
) -> dict[str, Any]:
    candidate: dict[str, Any] = {}
    if position:
        candidate["index"] = position  # proto3 JSON leaves out the default 0
    if parts is not None:
        candidate["content"] = {"role": "model", "parts": parts}
    if finish is not None:
        candidate["finishReason"] = finish
        candidate["safetyRatings"] = _safety_ratings(
            "HARM_CATEGORY_DANGEROUS_CONTENT" if finish == "SAFETY" else None
        )
        if parts:
            candidate["avgLogprobs"] = -0.0421
    return candidate


def _envelope(
    candidates: list[dict[str, Any]], usage: dict[str, Any], model: str, response_id: str
) -> dict[str, Any]:
    return {
        "candidates": candidates,
        "usageMetadata": usage,
        "modelVersion": model,
        "createTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "responseId": response_id,
    }


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": completion,
        "totalTokenCount": prompt + completion,
        "trafficType": "ON_DEMAND",
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
        "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": completion}],
    }


def _generate(
    behaviour: VertexBehaviour, body: dict[str, Any], model: str, response_id: str | None = None
) -> dict[str, Any]:
    """The whole GenerateContentResponse for a behaviour (streams split it into events)."""
    response_id = response_id or secrets.token_urlsafe(16)
    count = int((body.get("generationConfig") or {}).get("candidateCount", 1))
    if behaviour == "blocked_prompt":
        return {
            "promptFeedback": {
                "blockReason": "PROHIBITED_CONTENT",
                "blockReasonMessage": "The prompt was blocked due to prohibited content.",
            },
            "usageMetadata": {"promptTokenCount": 11, "totalTokenCount": 11},
            "modelVersion": model,
            "createTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "responseId": response_id,
        }
    if behaviour == "safety":
        return _envelope([_candidate(0, None, "SAFETY")], _usage(11, 0), model, response_id)
    declarations = [
        declaration
        for tool in body.get("tools") or []
        for declaration in tool.get("functionDeclarations") or []
    ]
    if behaviour == "tool_call" and declarations:
        call = {"functionCall": {"name": declarations[0]["name"], "args": {"city": "Tokyo"}}}
        candidates = [_candidate(position, [call], "STOP") for position in range(count)]
        return _envelope(candidates, _usage(11, 7 * count), model, response_id)
    text = '{"answer": 42}' if behaviour == "json" else TEXT
    candidates = [_candidate(position, [{"text": text}], "STOP") for position in range(count)]
    return _envelope(candidates, _usage(11, 7 * count), model, response_id)


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\r\n\r\n"
