"""The exact cache over the memory store and the real Redis: keys, scope, TTL, modes, failures."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from openapi_contract import validate

from serve.cache.exact import ExactCache
from serve.cache.layered import ResponseCache
from serve.cache.outcome import CacheMode, CacheStatus
from serve.cache.policy import ExactCachePolicy
from serve.cache.replay import replay_chat_stream
from serve.config import StateConfig
from serve.openai_types import ChatCompletion, ChatCompletionChunk
from serve.state import StateStore, create_state_store
from serve.state.memory_store import MemoryStateStore
from serve.state.redis_store import RedisStateStore


class Clock:
    """Wall time moved by hand, shared by the cache and the memory store."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[StateStore]:
    if request.param == "redis":
        prefix = f"rgtest:{uuid.uuid4().hex}:"
        config = StateConfig(
            backend="redis", url=request.getfixturevalue("redis_url"), key_prefix=prefix
        )
        state = create_state_store(config)
    else:
        state = MemoryStateStore(clock=clock)
    yield state
    await state.aclose()


def unreachable_redis() -> RedisStateStore:
    """A real Redis client whose server is gone: every call raises ConnectionError."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    return RedisStateStore(f"redis://127.0.0.1:{port}/0", prefix="rgtest:")


def request(text: str = "What is our refund policy?", **extra: Any) -> dict[str, Any]:
    return {
        "model": "chat-model",
        "messages": [{"role": "user", "content": text}],
        "temperature": 0,
        **extra,
    }


def answer(content: str = "Refunds are prorated.", finish: str = "stop") -> ChatCompletion:
    return {
        "id": "chatcmpl-original",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "chat-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "finish_reason": finish,
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14},
    }


def cache(store: StateStore, clock: Clock, **policy: Any) -> ExactCache:
    return ExactCache(store, ExactCachePolicy(**policy), clock=clock)


async def fill(c: ExactCache, team: str, req: dict[str, Any], response: Any = None) -> None:
    lookup = await c.lookup(team, req)
    assert lookup.status is CacheStatus.MISS
    assert await c.store(lookup, response or answer())


async def test_miss_then_hit_with_a_fresh_id(store: StateStore, clock: Clock) -> None:
    c = cache(store, clock)
    await fill(c, "team-a", request())
    clock.now += 30
    lookup = await c.lookup("team-a", request(stream=True, user="someone-else"))
    assert lookup.status is CacheStatus.HIT and lookup.hit is not None
    hit = lookup.hit
    assert hit.kind == "exact" and hit.source_id == "chatcmpl-original"
    assert hit.age_s == pytest.approx(30)
    assert hit.response["id"] != "chatcmpl-original" and hit.response["id"].startswith("chatcmpl-")
    assert hit.response["created"] == int(clock.now)
    assert hit.response["choices"] == answer()["choices"]
    assert hit.response["usage"] == answer()["usage"]
    validate("CreateChatCompletionResponse", hit.response)
    assert (c.stats.hits, c.stats.misses, c.stats.stored) == (1, 1, 1)


async def test_other_requests_miss(store: StateStore, clock: Clock) -> None:
    c = cache(store, clock)
    await fill(c, "team-a", request())
    for other in (request("Why?"), request(max_tokens=5), {**request(), "model": "other"}):
        assert (await c.lookup("team-a", other)).status is CacheStatus.MISS


@pytest.mark.parametrize(("scope", "team_b_hits"), [("team", False), ("global", True)])
async def test_scope(store: StateStore, clock: Clock, scope: str, team_b_hits: bool) -> None:
    c = cache(store, clock, scope=scope)
    await fill(c, "team-a", request())
    lookup = await c.lookup("team-b", request())
    assert (lookup.status is CacheStatus.HIT) is team_b_hits


async def test_entries_expire_after_the_ttl(clock: Clock) -> None:
    store = MemoryStateStore(clock=clock)
    c = cache(store, clock, ttl_s=60)
    await fill(c, "team-a", request())
    clock.now += 59
    assert (await c.lookup("team-a", request())).status is CacheStatus.HIT
    clock.now += 2
    assert (await c.lookup("team-a", request())).status is CacheStatus.MISS


async def test_redis_entries_carry_the_ttl(redis_url: str, clock: Clock) -> None:
    import redis.asyncio as aioredis

    prefix = f"rgtest:{uuid.uuid4().hex}:"
    store = RedisStateStore(redis_url, prefix=prefix)
    await fill(cache(store, clock, ttl_s=60), "team-a", request())
    raw = aioredis.Redis.from_url(redis_url)
    (key,) = [k async for k in raw.scan_iter(match=prefix + "cache:exact:*")]
    assert 0 < await raw.pttl(key) <= 60_000
    assert b"team-a" not in key  # the scope is inside the hash, keys reveal nothing
    await raw.aclose()
    await store.aclose()


@pytest.mark.parametrize(
    ("fields", "policy", "cacheable"),
    [
        ({"temperature": 0}, {}, True),
        ({"temperature": 0.8, "seed": 3}, {}, True),
        ({"temperature": 0.8}, {}, False),
        ({"temperature": None}, {}, False),  # OpenAI's default: temperature 1
        ({"temperature": 0.8}, {"cache_any_temperature": True}, True),
        ({"temperature": 0}, {"enabled": False}, False),
    ],
)
async def test_only_reproducible_requests_are_cached(
    store: StateStore, clock: Clock, fields: dict[str, Any], policy: dict[str, Any], cacheable: bool
) -> None:
    c = cache(store, clock, **policy)
    req = {k: v for k, v in {**request(), **fields}.items() if v is not None}
    first = await c.lookup("team-a", req)
    stored = await c.store(first, answer())
    second = await c.lookup("team-a", req)
    assert stored is cacheable
    assert second.status is (CacheStatus.HIT if cacheable else CacheStatus.UNCACHEABLE)


async def test_bypass_refreshes_and_no_store_leaves_no_trace(
    store: StateStore, clock: Clock
) -> None:
    c = cache(store, clock)
    await fill(c, "team-a", request(), answer("old"))
    bypass = await c.lookup("team-a", request(), mode=CacheMode.BYPASS)
    assert bypass.status is CacheStatus.BYPASS and bypass.hit is None
    assert await c.store(bypass, answer("new"))
    hit = (await c.lookup("team-a", request())).hit
    assert hit is not None and hit.response["choices"][0]["message"]["content"] == "new"

    private = request("Something private")
    no_store = await c.lookup("team-a", private, mode=CacheMode.NO_STORE)
    assert no_store.status is CacheStatus.BYPASS
    assert not await c.store(no_store, answer("secret"))
    assert (await c.lookup("team-a", private)).status is CacheStatus.MISS


@pytest.mark.parametrize(
    "response",
    [
        answer(finish="content_filter"),
        {**answer(), "object": "text_completion"},
        {**answer(), "choices": []},
        {k: v for k, v in answer().items() if k != "usage"},
    ],
    ids=["content_filter", "wrong object", "no choices", "no usage"],
)
async def test_incomplete_or_filtered_answers_are_not_stored(
    store: StateStore, clock: Clock, response: dict[str, Any]
) -> None:
    c = cache(store, clock)
    lookup = await c.lookup("team-a", request())
    assert not await c.store(lookup, response)
    assert (await c.lookup("team-a", request())).status is CacheStatus.MISS


async def test_oversized_answers_are_not_stored(store: StateStore, clock: Clock) -> None:
    c = cache(store, clock, max_value_bytes=2048)
    lookup = await c.lookup("team-a", request())
    assert not await c.store(lookup, answer("x" * 4096))
    assert c.stats.too_large == 1
    assert (await c.lookup("team-a", request())).status is CacheStatus.MISS
    assert await c.store(lookup, answer("short"))


async def test_store_failure_is_a_miss_not_an_error(clock: Clock) -> None:
    store = unreachable_redis()
    c = cache(store, clock)
    lookup = await c.lookup("team-a", request())
    assert lookup.status is CacheStatus.MISS
    assert not await c.store(lookup, answer())
    assert c.stats.errors == 2
    await store.aclose()


async def test_undecodable_entry_is_a_miss(store: StateStore, clock: Clock) -> None:
    c = cache(store, clock)
    lookup = await c.lookup("team-a", request())
    await store.set(lookup.ticket.key, b"\x00not json")
    assert (await c.lookup("team-a", request())).status is CacheStatus.MISS
    assert c.stats.errors == 1


async def test_streamed_miss_is_replayed_as_json_and_as_stream(
    store: StateStore, clock: Clock
) -> None:
    layered = ResponseCache(exact=cache(store, clock))
    streamed = request(stream=True, stream_options={"include_usage": True})
    first = await layered.lookup("team-a", streamed)
    assert first.status is CacheStatus.MISS
    engine_stream = replay_chat_stream(answer("Refunds are prorated."))  # stands in for a model
    passed = [c async for c in layered.record_chat_stream(first, engine_stream)]
    assert passed[-1]["usage"] is not None

    as_json = await layered.lookup("team-a", request())
    assert as_json.status is CacheStatus.HIT and as_json.hit is not None
    assert as_json.hit.response["choices"][0]["message"]["content"] == "Refunds are prorated."
    chunks: list[ChatCompletionChunk] = [
        c
        async for c in replay_chat_stream(as_json.hit.response)  # type: ignore[arg-type]
    ]
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Refunds are prorated." and chunks[-1]["usage"] == answer()["usage"]


async def test_abandoned_stream_is_not_stored(store: StateStore, clock: Clock) -> None:
    layered = ResponseCache(exact=cache(store, clock))
    first = await layered.lookup("team-a", request())
    stream = layered.record_chat_stream(first, replay_chat_stream(answer()))
    await anext(stream)  # the client reads one chunk and goes away
    await stream.aclose()
    assert (await layered.lookup("team-a", request())).status is CacheStatus.MISS


async def test_completions_endpoint_is_a_separate_namespace(
    store: StateStore, clock: Clock
) -> None:
    c = cache(store, clock)
    prompt = {"model": "chat-model", "prompt": "The sky is", "temperature": 0}
    completion = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "chat-model",
        "choices": [{"index": 0, "text": " blue.", "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    lookup = await c.lookup("team-a", prompt, endpoint="completions")
    assert await c.store(lookup, completion)
    assert not await c.store(await c.lookup("team-a", prompt), completion)  # not a chat answer
    hit = (await c.lookup("team-a", prompt, endpoint="completions")).hit
    assert hit is not None and hit.response["id"].startswith("cmpl-")
    assert hit.response["choices"] == completion["choices"]
    assert (await c.lookup("team-a", prompt)).status is CacheStatus.MISS


async def test_layered_lookup_has_a_ticket_only_when_something_would_be_stored(
    store: StateStore, clock: Clock
) -> None:
    empty = await ResponseCache().lookup("team-a", request())
    assert empty.status is CacheStatus.UNCACHEABLE and empty.ticket is None
    layered = ResponseCache(exact=cache(store, clock))
    sampled = await layered.lookup("team-a", request(temperature=1))
    assert sampled.status is CacheStatus.UNCACHEABLE and sampled.ticket is None
    private = await layered.lookup("team-a", request(), mode=CacheMode.NO_STORE)
    assert private.status is CacheStatus.BYPASS and private.ticket is None
    miss = await layered.lookup("team-a", request())
    assert miss.status is CacheStatus.MISS and miss.ticket is not None
