"""The Bedrock engine against the loopback fake: the wire (paths, SigV4 verified by the
fake's own implementation, bodies), streams, error mapping, embeddings and the AWS
credential chain with web-identity federation."""

from __future__ import annotations

import base64
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from fake_bedrock import (
    ACCESS_KEY,
    ANSWER,
    SECRET_KEY,
    FakeBedrock,
    SigV4Verifier,
    embedding_for,
)
from openapi_contract import validate

from models.engines.bedrock import BedrockEngine
from serve.errors import (
    GatewayError,
    InvalidRequest,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)

CHAT: dict[str, Any] = {"model": "bedrock-public", "messages": [{"role": "user", "content": "hi"}]}
WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
NOW = {"type": "function", "function": {"name": "now", "description": "Current time"}}
ENCODED_MODEL = "anthropic.claude-3-5-haiku-20241022-v1%3A0"
PROFILE_ARN = (
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
    "us.anthropic.claude-3-5-haiku-20241022-v1:0"
)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeBedrock]:
    fake = FakeBedrock()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(server: FakeBedrock) -> FakeBedrock:
    server.respond_with("text")
    server.received.clear()
    server.clock = time.time
    server.invoke_gate = 0
    server.max_invoke_inflight = 0
    server.stream_exception_type = "throttlingException"
    return server


async def collect(engine: BedrockEngine, request: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(chunk) async for chunk in engine.chat_stream(request)]


# --- the fake's signature check is itself checked -----------------------------------------


def test_the_fakes_verifier_accepts_the_aws_sigv4_test_suite_vector() -> None:
    # "get-vanilla" from the AWS Signature Version 4 test suite.
    verifier = SigV4Verifier(
        "us-east-1", "service", {"AKIDEXAMPLE": ("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None)}
    )
    headers = [
        ("host", "example.amazonaws.com"),
        ("x-amz-date", "20150830T123600Z"),
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date, "
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
    ]
    assert verifier.check("GET", "/", "", headers, b"", check_clock=False) is None
    tampered = [*headers[:1], ("x-amz-date", "20150830T123601Z"), headers[2]]
    failure = verifier.check("GET", "/", "", tampered, b"", check_clock=False)
    assert failure is not None and failure.error_type == "InvalidSignatureException"


def test_the_fakes_verifier_tells_single_from_double_encoded_paths(fake: FakeBedrock) -> None:
    """An S3-style signature (path encoded once) must not pass for bedrock: that is the
    mistake the double-encoding rule exists to catch."""
    url = f"{fake.endpoint}/model/{ENCODED_MODEL}/converse"
    body = b'{"messages":[]}'
    request = AWSRequest(method="POST", url=url, data=body, headers={"content-type": "x"})
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "bedrock", fake.region).add_auth(request)
    headers = [(k.lower(), v) for k, v in request.headers.items()]
    headers.append(("host", f"127.0.0.1:{fake.port}"))
    failure = fake.verifier().check("POST", f"/model/{ENCODED_MODEL}/converse", "", headers, body)
    assert failure is not None and failure.error_type == "InvalidSignatureException"


# --- chat ---------------------------------------------------------------------------------


async def test_chat_wire_and_response(fake: FakeBedrock) -> None:
    engine = fake.make_engine()
    result = await engine.chat(
        {
            **CHAT,
            "messages": [{"role": "system", "content": "Be brief."}, *CHAT["messages"]],
            "max_tokens": 64,
            "temperature": 0.1,
        }
    )
    validate("CreateChatCompletionResponse", result)
    assert result["model"] == "bedrock-public"
    assert result["id"].startswith("chatcmpl-")
    assert result["choices"][0]["message"]["content"] == ANSWER
    assert result["choices"][0]["finish_reason"] == "stop"
    assert result["usage"] == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    sent = fake.last()
    assert sent.method == "POST"
    assert sent.path == f"/model/{ENCODED_MODEL}/converse"
    assert sent.body == {
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 64, "temperature": 0.1},
    }
    assert sent.headers["content-type"] == "application/json"
    assert "x-amz-security-token" not in sent.headers  # static keys: no session token
    fake.assert_authenticated(sent)
    await engine.aclose()


async def test_inference_profile_arns_are_encoded_and_signed(fake: FakeBedrock) -> None:
    engine = fake.make_engine(model=PROFILE_ARN)
    await engine.chat(CHAT)
    sent = fake.last()
    assert sent.path == (
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2F"
        "us.anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"
    )
    fake.assert_authenticated(sent)
    await engine.aclose()


async def test_tool_call(fake: FakeBedrock) -> None:
    fake.respond_with("tool_call")
    engine = fake.make_engine()
    result = await engine.chat({**CHAT, "tools": [WEATHER], "tool_choice": "required"})
    validate("CreateChatCompletionResponse", result)
    choice = result["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "weather"
    assert orjson.loads(call["function"]["arguments"]) == {"city": "Tokyo"}
    assert call["id"].startswith("tooluse_")
    assert fake.last().body["toolConfig"]["toolChoice"] == {"any": {}}
    await engine.aclose()


async def test_json_mode_goes_through_a_forced_tool(fake: FakeBedrock) -> None:
    fake.respond_with("json")
    engine = fake.make_engine()
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}}
    result = await engine.chat(
        {
            **CHAT,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "a", "schema": schema},
            },
        }
    )
    validate("CreateChatCompletionResponse", result)
    message = result["choices"][0]["message"]
    assert orjson.loads(message["content"] or "") == {"answer": 42}
    assert "tool_calls" not in message
    assert result["choices"][0]["finish_reason"] == "stop"
    tool_config = fake.last().body["toolConfig"]
    forced = tool_config["toolChoice"]["tool"]["name"]
    assert tool_config["tools"][0]["toolSpec"]["name"] == forced
    assert tool_config["tools"][0]["toolSpec"]["inputSchema"] == {"json": schema}
    await engine.aclose()


# --- streams ------------------------------------------------------------------------------


async def test_stream_chunk_sequence(fake: FakeBedrock) -> None:
    engine = fake.make_engine()
    chunks = await collect(engine, CHAT)
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
    assert fake.last().path == f"/model/{ENCODED_MODEL}/converse-stream"
    assert fake.last().headers["accept"] == "application/vnd.amazon.eventstream"
    fake.assert_authenticated(fake.last())
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content") or "" for d in deltas) == ANSWER
    assert len([d for d in deltas if d.get("content")]) == 3  # streamed, not one lump
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-2])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    assert len({c["id"] for c in chunks}) == 1 and {c["model"] for c in chunks} == {
        "bedrock-public"
    }
    await engine.aclose()


async def test_stream_tool_calls_with_partial_json(fake: FakeBedrock) -> None:
    fake.respond_with("multi_tool_call")
    engine = fake.make_engine()
    chunks = await collect(engine, {**CHAT, "tools": [WEATHER, NOW]})
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("content") or "" for d in deltas) == "Let me look both up."
    calls = [call for d in deltas for call in d.get("tool_calls", [])]
    starts = [c for c in calls if "id" in c]
    assert [(c["index"], c["function"]["name"]) for c in starts] == [(0, "weather"), (1, "now")]
    fragments: dict[int, list[str]] = {0: [], 1: []}
    for call in calls:
        fragments[call["index"]].append(call["function"]["arguments"])
    assert len(fragments[0]) > 2  # the input arrived in pieces
    assert orjson.loads("".join(fragments[0])) == {"city": "Tokyo"}
    assert orjson.loads("".join(fragments[1])) == {"city": "Paris", "days": 2}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    await engine.aclose()


async def test_stream_json_mode(fake: FakeBedrock) -> None:
    fake.respond_with("json")
    engine = fake.make_engine()
    chunks = await collect(engine, {**CHAT, "response_format": {"type": "json_object"}})
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert orjson.loads("".join(d.get("content") or "" for d in deltas)) == {"answer": 42}
    assert not any("tool_calls" in d for d in deltas)
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    await engine.aclose()


@pytest.mark.parametrize(
    ("exception_type", "error", "status"),
    [
        ("throttlingException", RateLimited, 429),
        ("modelStreamErrorException", UpstreamError, 502),
        ("internalServerException", UpstreamError, 502),
        ("serviceUnavailableException", UpstreamError, 502),
        ("modelTimeoutException", UpstreamTimeout, 504),
        ("validationException", InvalidRequest, 400),
    ],
)
async def test_stream_exception_events(
    fake: FakeBedrock, exception_type: str, error: type[GatewayError], status: int
) -> None:
    fake.respond_with("stream_exception")
    fake.stream_exception_type = exception_type
    engine = fake.make_engine()
    received = []
    with pytest.raises(error) as info:
        async for chunk in engine.chat_stream(CHAT):
            received.append(chunk)
    assert type(info.value) is error and info.value.status == status
    assert [c["choices"][0]["delta"] for c in received] == [
        {"role": "assistant", "content": ""},
        {"content": "Hel"},
    ]
    if error is InvalidRequest:  # validation messages are the caller's business
        assert info.value.message == "The stream failed at 10.0.0.7."
    else:
        assert "10.0.0.7" not in info.value.message
    await engine.aclose()


@pytest.mark.parametrize("behaviour", ["stream_corrupt", "stream_truncated", "stream_unfinished"])
async def test_broken_streams_fail(fake: FakeBedrock, behaviour: str) -> None:
    fake.respond_with(behaviour)
    engine = fake.make_engine()
    with pytest.raises(UpstreamError) as info:
        await collect(engine, CHAT)
    assert info.value.status == 502
    await engine.aclose()


# --- errors -------------------------------------------------------------------------------

LONG = "x" * 900


@pytest.mark.parametrize(
    ("status", "error_type", "message", "headers", "error", "code", "passes_message"),
    [
        (
            400,
            "ValidationException",
            "maxTokens too big",
            {},
            InvalidRequest,
            "upstream_invalid_request",
            True,
        ),
        (400, "ValidationException", LONG, {}, InvalidRequest, "upstream_invalid_request", True),
        (
            403,
            "AccessDeniedException",
            "no access to arn:aws:iam::1:role/x",
            {},
            UpstreamError,
            "upstream_auth_failed",
            False,
        ),
        (
            403,
            "UnrecognizedClientException",
            "bad token",
            {},
            UpstreamError,
            "upstream_auth_failed",
            False,
        ),
        (403, "ExpiredTokenException", "expired", {}, UpstreamError, "upstream_auth_failed", False),
        (
            429,
            "ThrottlingException",
            "slow down",
            {"retry-after": "3"},
            RateLimited,
            "upstream_rate_limited",
            False,
        ),
        (429, "ThrottlingException", "slow down", {}, RateLimited, "upstream_rate_limited", False),
        (
            400,
            "ServiceQuotaExceededException",
            "quota",
            {},
            RateLimited,
            "upstream_rate_limited",
            False,
        ),
        (
            429,
            "ModelNotReadyException",
            "warming",
            {},
            UpstreamError,
            "upstream_unavailable",
            False,
        ),
        (
            503,
            "ServiceUnavailableException",
            "busy",
            {},
            UpstreamError,
            "upstream_unavailable",
            False,
        ),
        (
            500,
            "InternalServerException",
            "crash at 10.0.0.7",
            {},
            UpstreamError,
            "upstream_error",
            False,
        ),
        (
            424,
            "ModelErrorException",
            "model crashed at 10.0.0.7",
            {},
            UpstreamError,
            "upstream_error",
            False,
        ),
        (
            404,
            "ResourceNotFoundException",
            "no model x",
            {},
            UpstreamError,
            "upstream_error",
            False,
        ),
        (
            408,
            "ModelTimeoutException",
            "took too long",
            {},
            UpstreamTimeout,
            "upstream_timeout",
            False,
        ),
    ],
)
@pytest.mark.parametrize("mode", ["chat", "stream"])
async def test_error_mapping(
    fake: FakeBedrock,
    mode: str,
    status: int,
    error_type: str,
    message: str,
    headers: dict[str, str],
    error: type[GatewayError],
    code: str,
    passes_message: bool,
) -> None:
    fake.fail_with(status, error_type, message, headers)
    engine = fake.make_engine()
    with pytest.raises(error) as info:
        if mode == "chat":
            await engine.chat(CHAT)
        else:
            await collect(engine, CHAT)
    assert type(info.value) is error
    assert info.value.code == code
    if passes_message:
        assert info.value.message == message[:500]
    else:
        assert message not in info.value.message
    assert info.value.headers == ({"retry-after": "3"} if headers else {})
    await engine.aclose()


async def test_wrong_secret_is_an_auth_failure_that_leaks_nothing(fake: FakeBedrock) -> None:
    engine = fake.make_engine(valid_credentials=False)
    with pytest.raises(UpstreamError) as info:
        await engine.chat(CHAT)
    assert info.value.code == "upstream_auth_failed" and info.value.status == 502
    assert "signature" not in info.value.message.lower()
    failure = fake.last().signature_failure
    assert failure is not None and failure.error_type == "InvalidSignatureException"
    await engine.aclose()


async def test_a_stale_signature_is_refused(fake: FakeBedrock) -> None:
    fake.clock = lambda: time.time() + 600  # the server's clock is 10 minutes ahead
    engine = fake.make_engine()
    with pytest.raises(UpstreamError) as info:
        await engine.chat(CHAT)
    assert info.value.code == "upstream_auth_failed"
    failure = fake.last().signature_failure
    assert failure is not None and failure.message.startswith("Signature expired")
    await engine.aclose()


@pytest.mark.parametrize("mode", ["chat", "stream"])
async def test_timeout(fake: FakeBedrock, mode: str) -> None:
    fake.respond_with("slow")
    engine = fake.make_engine(timeout_s=0.3)
    with pytest.raises(UpstreamTimeout):
        if mode == "chat":
            await engine.chat(CHAT)
        else:
            await collect(engine, CHAT)
    await engine.aclose()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_backend(fake: FakeBedrock) -> None:
    backend = fake.backend().model_copy(update={"endpoint": f"http://127.0.0.1:{_closed_port()}"})
    engine = BedrockEngine(
        "bedrock-public", backend, credentials=Credentials(ACCESS_KEY, SECRET_KEY)
    )
    with pytest.raises(UpstreamError) as info:
        await engine.chat(CHAT)
    assert info.value.status == 502
    await engine.aclose()


async def test_the_contract_behaviours(fake: FakeBedrock) -> None:
    """Each scripted behaviour of the shared provider contract, through `chat`."""
    engine = fake.make_engine(timeout_s=1)
    expected: dict[str, tuple[type[GatewayError], int]] = {
        "error_400": (InvalidRequest, 400),
        "error_403": (UpstreamError, 502),
        "error_429": (RateLimited, 429),
        "error_500": (UpstreamError, 502),
        "error_503": (UpstreamError, 502),
        "slow": (UpstreamTimeout, 504),
    }
    for behaviour, (error, status) in expected.items():
        fake.respond_with(behaviour)
        with pytest.raises(error) as info:
            await engine.chat(CHAT)
        assert info.value.status == status, behaviour
        if behaviour == "error_429":
            assert info.value.headers == {"retry-after": "1"}
    for request in fake.bedrock_requests():
        fake.assert_authenticated(request)
    await engine.aclose()


# --- embeddings and unsupported tasks -----------------------------------------------------


@pytest.mark.parametrize("encoding", ["float", "base64"])
async def test_titan_embeddings(fake: FakeBedrock, encoding: str) -> None:
    engine = fake.make_engine(model="amazon.titan-embed-text-v2:0")
    texts = ["first text", "the second one", "3"]
    result = await engine.embeddings(
        {"model": "e", "input": texts, "dimensions": 256, "encoding_format": encoding}
    )
    if encoding == "float":  # the spec describes only the float form
        validate("CreateEmbeddingResponse", result)
    assert result["model"] == "bedrock-public"
    assert result["usage"] == {"prompt_tokens": 6, "total_tokens": 6}
    assert [d["index"] for d in result["data"]] == [0, 1, 2]
    for item, text in zip(result["data"], texts, strict=True):
        vector = item["embedding"]
        if encoding == "base64":
            assert isinstance(vector, str)
            raw = base64.b64decode(vector)
            vector = list(struct.unpack(f"<{len(raw) // 4}f", raw))
        assert vector == pytest.approx(embedding_for(text, 256))
    sent = sorted((r.body["inputText"], r.body) for r in fake.bedrock_requests())
    assert [body for _, body in sent] == [
        {"inputText": t, "normalize": True, "dimensions": 256} for t in sorted(texts)
    ]
    assert {r.path for r in fake.bedrock_requests()} == {
        "/model/amazon.titan-embed-text-v2%3A0/invoke"
    }
    for request in fake.bedrock_requests():
        fake.assert_authenticated(request)
    await engine.aclose()


async def test_embeddings_run_concurrently_but_bounded(fake: FakeBedrock) -> None:
    fake.invoke_gate = 4  # the fake holds each call until 4 are in flight at once
    engine = fake.make_engine(model="amazon.titan-embed-text-v2:0")
    result = await engine.embeddings({"model": "e", "input": [f"text {i}" for i in range(40)]})
    assert len(result["data"]) == 40
    assert 4 <= fake.max_invoke_inflight <= 16
    await engine.aclose()


async def test_titan_v1_gets_only_input_text(fake: FakeBedrock) -> None:
    engine = fake.make_engine(model="amazon.titan-embed-text-v1")
    await engine.embeddings({"model": "e", "input": "hello"})
    assert fake.last().body == {"inputText": "hello"}
    with pytest.raises(InvalidRequest):
        await engine.embeddings({"model": "e", "input": "hello", "dimensions": 256})
    await engine.aclose()


async def test_one_failed_embedding_fails_the_request(fake: FakeBedrock) -> None:
    fake.fail_with(429, "ThrottlingException", "slow down")
    engine = fake.make_engine(model="amazon.titan-embed-text-v2:0")
    with pytest.raises(RateLimited):
        await engine.embeddings({"model": "e", "input": ["a", "b", "c"]})
    await engine.aclose()


@pytest.mark.parametrize("value", [[1, 2, 3], [[1, 2]], [], 5])
async def test_embedding_inputs_must_be_text(fake: FakeBedrock, value: Any) -> None:
    engine = fake.make_engine(model="amazon.titan-embed-text-v2:0")
    with pytest.raises(InvalidRequest):
        await engine.embeddings({"model": "e", "input": value})
    assert fake.bedrock_requests() == []
    await engine.aclose()


async def test_completions_are_unsupported(fake: FakeBedrock) -> None:
    engine = fake.make_engine()
    with pytest.raises(InvalidRequest) as info:
        await engine.completion({"model": "m", "prompt": "hi"})
    assert info.value.code == "unsupported_task"
    with pytest.raises(InvalidRequest) as info:
        async for _ in engine.completion_stream({"model": "m", "prompt": "hi"}):
            pass
    assert info.value.code == "unsupported_task"
    assert fake.received == []
    await engine.aclose()


# --- the credential chain -----------------------------------------------------------------


def _isolate_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_ENDPOINT_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


async def test_web_identity_federation_gets_temporary_credentials(
    fake: FakeBedrock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _isolate_aws_env(monkeypatch, tmp_path)
    token_file = tmp_path / "token"
    token_file.write_text("eyJhbGciOiJSUzI1NiJ9.projected-service-account-token.sig")
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/raygate-bedrock")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", fake.endpoint)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    engine = BedrockEngine("bedrock-public", fake.backend())  # no credentials: the chain

    await engine.chat(CHAT)
    await engine.chat(CHAT)

    sts_calls = [r for r in fake.received if r.path == "/"]
    assert len(sts_calls) == 1  # fetched once, then reused until near expiry
    assert sts_calls[0].body["Action"] == "AssumeRoleWithWebIdentity"
    assert sts_calls[0].body["RoleArn"] == "arn:aws:iam::123456789012:role/raygate-bedrock"
    assert sts_calls[0].body["WebIdentityToken"] == token_file.read_text()
    issued = {
        key: secret_token for key, secret_token in fake.keys.items() if key.startswith("ASIA")
    }
    assert len(issued) == 1
    [(access_key, (_, session_token))] = issued.items()
    for sent in fake.bedrock_requests():
        assert sent.signature_failure is None
        assert f"Credential={access_key}/" in sent.headers["authorization"]
        assert sent.headers["x-amz-security-token"] == session_token
        assert "x-amz-security-token" in sent.headers["authorization"]  # and it was signed
        fake.assert_authenticated(sent)
    await engine.aclose()


async def test_no_credentials_anywhere_is_a_generic_auth_failure(
    fake: FakeBedrock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _isolate_aws_env(monkeypatch, tmp_path)
    engine = BedrockEngine("bedrock-public", fake.backend())
    with pytest.raises(UpstreamError) as info:
        await engine.chat(CHAT)
    assert info.value.code == "upstream_auth_failed"
    assert fake.received == []
    await engine.aclose()


async def test_a_missing_profile_is_a_generic_auth_failure(
    fake: FakeBedrock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _isolate_aws_env(monkeypatch, tmp_path)
    backend = fake.backend().model_copy(update={"profile": "nobody"})
    engine = BedrockEngine("bedrock-public", backend)
    with pytest.raises(UpstreamError) as info:
        await engine.chat(CHAT)
    assert info.value.code == "upstream_auth_failed"
    await engine.aclose()


async def test_a_missing_web_identity_token_file_is_a_generic_auth_failure(
    fake: FakeBedrock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _isolate_aws_env(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/raygate-bedrock")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(tmp_path / "not-mounted"))
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", fake.endpoint)
    engine = BedrockEngine("bedrock-public", fake.backend())
    with pytest.raises(UpstreamError) as info:
        await engine.chat(CHAT)
    assert info.value.code == "upstream_auth_failed"
    assert fake.received == []
    await engine.aclose()
