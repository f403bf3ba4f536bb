"""Routing, fallbacks, breakers and caches through the real gateway and HTTP edge (no Ray).

The gateway is built by `serve.bootstrap.build_gateway` from a platform config whose
backends are loopback fakes speaking the real wire formats (OpenAI-compatible, Vertex);
the client is the official `openai` SDK, and responses are validated against OpenAI's
published schema.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asgi_client
import openai
import pytest
from fake_upstream import FakeUpstream
from fake_vertex import FakeVertex
from openapi_contract import validate

from models.engines.minilm_engine import MiniLMEngine
from serve.api.app import create_app, with_context
from serve.bootstrap import build_gateway
from serve.config import parse_platform_config
from serve.errors import ConfigError

DEV = "sk-rg-route0001-" + "d" * 32
OTHER = "sk-rg-route0002-" + "e" * 32
CANARY = "sk-rg-route0003-" + "f" * 32
MESSAGES: Any = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def vertex() -> Iterator[FakeVertex]:
    server = FakeVertex()
    server.start()
    yield server
    server.stop()


def platform_args(upstream: FakeUpstream, vertex: FakeVertex, tmp: Path) -> dict[str, Any]:
    breaker = {"failure_threshold": 2, "cooldown_s": 600}
    return {
        "database": {"url": f"sqlite+aiosqlite:///{tmp}/routing.db"},
        "teams": [
            {"name": "dev"},
            {"name": "other"},
            {"name": "canary"},
        ],
        "keys": [
            {"team": "dev", "name": "dev", "key": "env:RG_ROUTE_DEV"},
            {"team": "other", "name": "other", "key": "env:RG_ROUTE_OTHER"},
            {"team": "canary", "name": "canary", "key": "env:RG_ROUTE_CANARY"},
        ],
        "models": [
            {
                "name": "flaky",
                "backend": {
                    "kind": "openai_compatible",
                    "base_url": upstream.base_url,
                    "model": "fail-500",
                },
                "tasks": ["chat"],
                "reliability": {
                    "retry": {"max_attempts": 2, "base_delay_s": 0, "max_delay_s": 0},
                    "breaker": breaker,
                    "fallbacks": ["gemini"],
                },
            },
            {
                "name": "breaks-mid-stream",
                "backend": {
                    "kind": "openai_compatible",
                    "base_url": upstream.base_url,
                    "model": "break-mid-stream",
                },
                "tasks": ["chat"],
                "reliability": {"fallbacks": ["gemini"]},
            },
            {
                "name": "upstream",
                "aliases": ["upstream-alias"],
                "backend": {
                    "kind": "openai_compatible",
                    "base_url": upstream.base_url,
                    "model": "fake-upstream",
                },
                "tasks": ["chat"],
            },
            {
                "name": "gemini",
                "backend": {
                    "kind": "vertex",
                    "project": vertex.project,
                    "location": vertex.location,
                    "model": vertex.model,
                    "endpoint": vertex.base_url,
                    "credentials_file": str(vertex.service_account_file()),
                },
            },
            {"name": "minilm", "backend": {"kind": "minilm"}},
        ],
        "routes": [
            {
                "name": "chat-default",
                "targets": [{"model": "upstream", "weight": 1}],
                "teams": {"canary": [{"model": "gemini", "weight": 1}]},
            }
        ],
        "evaluations": [
            {
                "id": "fallbacks-2026-11",
                "report": "gs://raygate-evals/2026-11/fallbacks.json",
                "approved": [
                    {"primary": "flaky", "fallback": "gemini"},
                    {"primary": "breaks-mid-stream", "fallback": "gemini"},
                ],
            }
        ],
        "cache": {"semantic": {"enabled": True, "embed_model": "minilm", "models": ["upstream"]}},
    }


@pytest.fixture
async def app(
    upstream: FakeUpstream,
    vertex: FakeVertex,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Any]:
    monkeypatch.setenv("RG_ROUTE_DEV", DEV)
    monkeypatch.setenv("RG_ROUTE_OTHER", OTHER)
    monkeypatch.setenv("RG_ROUTE_CANARY", CANARY)
    vertex.reset()
    config = parse_platform_config(platform_args(upstream, vertex, tmp_path))
    gateway = await build_gateway(config, {"minilm": MiniLMEngine("minilm")})
    yield with_context(create_app(gateway), gateway, under_serve=False)
    await gateway.aclose()


def sdk(app: Any, key: str = DEV) -> openai.AsyncOpenAI:
    return asgi_client.sdk(app, key)


def upstream_calls(upstream: FakeUpstream, model: str) -> int:
    return sum(1 for r in upstream.requests if r.body.get("model") == model)


# -- fallbacks and breakers ---------------------------------------------------------------


async def test_failed_primary_falls_back_to_the_approved_model_and_says_so(
    app: Any, upstream: FakeUpstream, vertex: FakeVertex
) -> None:
    before = upstream_calls(upstream, "fail-500")
    raw = await sdk(app).chat.completions.with_raw_response.create(model="flaky", messages=MESSAGES)
    reply = raw.parse()
    validate("CreateChatCompletionResponse", reply.model_dump(exclude_unset=True))
    assert reply.model == "gemini"
    assert raw.headers["x-raygate-fallback"] == "flaky->gemini"
    assert raw.headers["x-raygate-model"] == "gemini"
    assert reply.choices[0].message.content and "Hello" in reply.choices[0].message.content
    assert upstream_calls(upstream, "fail-500") - before == 2  # max_attempts on the primary
    vertex.assert_authenticated(vertex.last())


async def test_open_breaker_skips_the_dead_backend_without_calling_it(
    app: Any, upstream: FakeUpstream
) -> None:
    client = sdk(app)
    # Two requests x two attempts: the breaker (threshold 2) opens during the first one.
    await client.chat.completions.create(model="flaky", messages=MESSAGES)
    calls = upstream_calls(upstream, "fail-500")
    raw = await client.chat.completions.with_raw_response.create(model="flaky", messages=MESSAGES)
    assert raw.headers["x-raygate-fallback"] == "flaky->gemini"
    assert upstream_calls(upstream, "fail-500") == calls


async def test_stream_failing_before_the_first_token_falls_back_transparently(app: Any) -> None:
    stream = await sdk(app).chat.completions.create(
        model="flaky", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))
    assert {c.model for c in chunks} == {"gemini"}
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Hello" in text
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


async def test_stream_failing_after_the_first_token_ends_with_an_error_not_a_fallback(
    app: Any,
) -> None:
    stream = await sdk(app).chat.completions.create(
        model="breaks-mid-stream", messages=MESSAGES, stream=True
    )
    seen = []
    with pytest.raises(openai.APIError):
        async for chunk in stream:
            seen.append(chunk.model)
    assert seen and set(seen) == {"breaks-mid-stream"}


async def test_client_errors_are_not_retried_or_fallen_back(app: Any, vertex: FakeVertex) -> None:
    vertex.respond_with("error_400")
    with pytest.raises(openai.BadRequestError):
        await sdk(app).chat.completions.create(model="gemini", messages=MESSAGES)
    assert len(vertex.api_requests()) == 1


# -- routes ---------------------------------------------------------------------------------


async def test_route_sends_each_team_to_its_split_and_reports_the_model(app: Any) -> None:
    raw = await sdk(app).chat.completions.with_raw_response.create(
        model="chat-default", messages=MESSAGES
    )
    assert raw.parse().model == "upstream"
    assert "x-raygate-fallback" not in raw.headers
    raw = await sdk(app, CANARY).chat.completions.with_raw_response.create(
        model="chat-default", messages=MESSAGES
    )
    assert raw.parse().model == "gemini"


async def test_alias_keeps_the_requested_name(app: Any) -> None:
    reply = await sdk(app).chat.completions.create(model="upstream-alias", messages=MESSAGES)
    assert reply.model == "upstream-alias"


async def test_routes_are_listed_as_models(app: Any) -> None:
    ids = {m.id async for m in sdk(app).models.list()}
    assert {"chat-default", "upstream", "upstream-alias", "gemini", "flaky"} <= ids


def test_unapproved_fallback_is_refused_at_load(
    upstream: FakeUpstream, vertex: FakeVertex, tmp_path: Path
) -> None:
    args = platform_args(upstream, vertex, tmp_path)
    args["models"][2]["reliability"] = {"fallbacks": ["gemini"]}  # upstream -> gemini
    with pytest.raises(ConfigError, match="'upstream' -> 'gemini' is not approved"):
        parse_platform_config(args)


def test_fallback_needs_an_evaluation_report(
    upstream: FakeUpstream, vertex: FakeVertex, tmp_path: Path
) -> None:
    args = platform_args(upstream, vertex, tmp_path)
    args["evaluations"][0]["report"] = " "
    with pytest.raises(ConfigError, match=r"evaluations\[0\]\.report"):
        parse_platform_config(args)


# -- exact cache ----------------------------------------------------------------------------


async def test_exact_cache_answers_a_repeat_without_calling_the_model(
    app: Any, upstream: FakeUpstream
) -> None:
    client = sdk(app)
    messages: Any = [{"role": "user", "content": "Exact cache probe 1"}]
    before = upstream_calls(upstream, "fake-upstream")
    first = await client.chat.completions.with_raw_response.create(
        model="upstream", messages=messages, temperature=0
    )
    second = await client.chat.completions.with_raw_response.create(
        model="upstream-alias", messages=messages, temperature=0
    )
    assert first.headers["x-raygate-cache"] == "miss"
    assert second.headers["x-raygate-cache"] == "hit"
    assert upstream_calls(upstream, "fake-upstream") - before == 1
    a, b = first.parse(), second.parse()
    validate("CreateChatCompletionResponse", b.model_dump(exclude_unset=True))
    assert b.choices[0].message.content == a.choices[0].message.content
    assert b.model == "upstream-alias" and b.id != a.id

    stream = await client.chat.completions.create(
        model="upstream",
        messages=messages,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == a.choices[0].message.content
    assert chunks[-1].usage is not None
    assert upstream_calls(upstream, "fake-upstream") - before == 1


async def test_cache_is_per_team_and_can_be_bypassed(app: Any, upstream: FakeUpstream) -> None:
    messages: Any = [{"role": "user", "content": "Exact cache probe 2"}]
    await sdk(app).chat.completions.create(model="upstream", messages=messages, temperature=0)
    other = await sdk(app, OTHER).chat.completions.with_raw_response.create(
        model="upstream", messages=messages, temperature=0
    )
    assert other.headers["x-raygate-cache"] == "miss"
    bypass = await sdk(app).chat.completions.with_raw_response.create(
        model="upstream",
        messages=messages,
        temperature=0,
        extra_headers={"x-raygate-cache": "bypass"},
    )
    assert bypass.headers["x-raygate-cache"] == "bypass"


async def test_sampled_requests_are_not_cached(app: Any) -> None:
    raw = await sdk(app).chat.completions.with_raw_response.create(
        model="upstream", messages=MESSAGES, temperature=0.7
    )
    assert raw.headers["x-raygate-cache"] == "uncacheable"


async def test_bad_cache_header_is_a_400(app: Any) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await sdk(app).chat.completions.create(
            model="upstream", messages=MESSAGES, extra_headers={"x-raygate-cache": "sometimes"}
        )
    assert info.value.code == "invalid_header"


async def test_a_streamed_answer_is_cached_for_a_plain_repeat(
    app: Any, upstream: FakeUpstream
) -> None:
    messages: Any = [{"role": "user", "content": "Exact cache probe 3"}]
    client = sdk(app)
    stream = await client.chat.completions.create(
        model="upstream", messages=messages, temperature=0, stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    raw = await client.chat.completions.with_raw_response.create(
        model="upstream", messages=messages, temperature=0
    )
    assert raw.headers["x-raygate-cache"] == "hit"
    assert raw.parse().choices[0].message.content == text


# -- semantic cache -------------------------------------------------------------------------


async def test_semantic_cache_serves_a_paraphrase_to_the_same_team_only(
    app: Any, upstream: FakeUpstream
) -> None:
    client = sdk(app)
    asked: Any = [{"role": "user", "content": "How do I reset my password for the HR portal?"}]
    # Differs only in filler (the default guards, serve.cache.eligibility, allow no more).
    again: Any = [
        {"role": "user", "content": "Please, how can I reset my passwords for the HR portal"}
    ]
    first = await client.chat.completions.with_raw_response.create(
        model="upstream", messages=asked, temperature=0
    )
    assert first.headers["x-raygate-cache"] == "miss"
    calls = upstream_calls(upstream, "fake-upstream")
    hit = await client.chat.completions.with_raw_response.create(
        model="upstream", messages=again, temperature=0
    )
    assert hit.headers["x-raygate-cache"] == "semantic-hit"
    assert upstream_calls(upstream, "fake-upstream") == calls
    other = await sdk(app, OTHER).chat.completions.with_raw_response.create(
        model="upstream", messages=again, temperature=0
    )
    assert other.headers["x-raygate-cache"] == "miss"


async def test_semantic_cache_never_answers_requests_with_tools(app: Any) -> None:
    tools: Any = [
        {
            "type": "function",
            "function": {"name": "reset_password", "parameters": {"type": "object"}},
        }
    ]
    asked: Any = [{"role": "user", "content": "Please reset the password on my HR account."}]
    again: Any = [{"role": "user", "content": "Please reset my HR account password."}]
    client = sdk(app)
    await client.chat.completions.create(model="upstream", messages=asked, temperature=0)
    raw = await client.chat.completions.with_raw_response.create(
        model="upstream", messages=again, temperature=0, tools=tools
    )
    assert raw.headers["x-raygate-cache"] != "semantic-hit"
    assert raw.parse().choices[0].message.tool_calls


@pytest.mark.parametrize(
    "extra",
    [
        {"seed": 1e20},  # integral float beyond int64: JSON allows it
        {"seed": 18446744073709551615},  # uint64 max
        {"metadata": {"n": 1e30}},
        {  # inside a tool's JSON schema, which the request passes through untouched
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "f",
                        "parameters": {"type": "object", "maxProperties": 1e20},
                    },
                }
            ]
        },
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "s", "schema": {"type": "number", "maximum": 1e25}},
            }
        },
    ],
)
async def test_numbers_json_allows_never_make_a_500(
    app: Any, upstream: FakeUpstream, extra: dict[str, Any]
) -> None:
    """Found by fuzzing with OpenAI's schema: an integral float beyond 64 bits crashed the
    cache key (a 500). Such a request is answered, or refused with a 400, never a 500."""
    async with asgi_client.http(app) as client:
        response = await client.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {DEV}"},
            json={"model": "upstream", "messages": MESSAGES, "temperature": 0, **extra},
        )
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        validate("ErrorResponse", response.json())
