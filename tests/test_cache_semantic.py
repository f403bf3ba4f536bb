"""The semantic cache with the real numpy MiniLM, over the memory store and the real Redis."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from models.engine import Request
from models.engines.minilm_engine import MiniLMEngine
from models.engines.unsupported import NoGeneration
from serve.cache.layered import ResponseCache
from serve.cache.outcome import CacheMode, CacheStatus, Lookup
from serve.cache.policy import SemanticCachePolicy
from serve.cache.semantic import SemanticCache
from serve.config import StateConfig
from serve.openai_types import ChatCompletion, EmbeddingList
from serve.state import StateStore, create_state_store
from serve.state.memory_store import MemoryStateStore
from serve.state.redis_store import RedisStateStore

EMBED = "all-minilm-l6-v2"
QUESTION = "How do I reset my VPN password?"
SURFACE_VARIANT = "Please, how do I reset my VPN password?"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class CountingEmbedder(NoGeneration):
    """The real MiniLM, counting calls (and failing on demand)."""

    def __init__(self, engine: MiniLMEngine) -> None:
        self.engine = engine
        self.calls = 0
        self.fail = False

    async def embeddings(self, request: Request) -> EmbeddingList:
        self.calls += 1
        if self.fail:
            raise ConnectionError("embedding deployment unavailable")
        return await self.engine.embeddings(request)

    async def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


@pytest.fixture(scope="module")
def minilm() -> MiniLMEngine:
    return MiniLMEngine(EMBED)


@pytest.fixture
def embedder(minilm: MiniLMEngine) -> CountingEmbedder:
    return CountingEmbedder(minilm)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def redis(url: str, prefix: str) -> StateStore:
    return create_state_store(StateConfig(backend="redis", url=url, key_prefix=prefix))


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[StateStore]:
    if request.param == "redis":
        state = redis(request.getfixturevalue("redis_url"), f"rgtest:{uuid.uuid4().hex}:")
    else:
        state = MemoryStateStore(clock=clock)
    yield state
    await state.aclose()


def policy(**changes: Any) -> SemanticCachePolicy:
    return SemanticCachePolicy(enabled=True, embed_model=EMBED, **changes)


def cache(store: StateStore, embedder: Any, clock: Clock, **changes: Any) -> SemanticCache:
    return SemanticCache(store, embedder, policy(**changes), clock=clock)


def ask(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": "chat-model",
        "messages": [{"role": "user", "content": text}],
        "temperature": 0,
        **extra,
    }


def answer(content: str = "Use the self-service portal.") -> ChatCompletion:
    return {
        "id": "chatcmpl-original",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "chat-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


async def fill(c: SemanticCache, team: str, request: dict[str, Any], content: str = "A") -> None:
    lookup = await c.lookup(team, request)
    assert lookup.status is CacheStatus.MISS, lookup
    assert await c.store(lookup, answer(content))


async def similarity_of(store: StateStore, embedder: Any, clock: Clock, a: str, b: str) -> float:
    probe = cache(store, embedder, clock, threshold=1.0)
    await fill(probe, "probe", ask(a))
    lookup = await probe.lookup("probe", ask(b))
    assert lookup.similarity is not None
    return lookup.similarity


async def test_hit_above_threshold_miss_below(
    store: StateStore, embedder: CountingEmbedder, clock: Clock
) -> None:
    s = await similarity_of(store, embedder, clock, QUESTION, SURFACE_VARIANT)
    assert 0 < s < 1
    below = cache(store, embedder, clock, threshold=min(1.0, s + 0.005))
    above = cache(store, embedder, clock, threshold=s - 0.005)
    await fill(below, "team-a", ask(QUESTION), "portal")
    missed = await below.lookup("team-a", ask(SURFACE_VARIANT))
    assert missed.status is CacheStatus.MISS and missed.similarity == pytest.approx(s, abs=1e-5)
    hit = await above.lookup("team-a", ask(SURFACE_VARIANT))
    assert hit.status is CacheStatus.SEMANTIC_HIT and hit.hit is not None
    assert hit.hit.kind == "semantic" and hit.hit.similarity == pytest.approx(s, abs=1e-5)
    assert hit.hit.response["choices"][0]["message"]["content"] == "portal"
    assert hit.hit.response["id"] != "chatcmpl-original"


async def test_per_model_threshold(
    store: StateStore, embedder: CountingEmbedder, clock: Clock
) -> None:
    s = await similarity_of(store, embedder, clock, QUESTION, SURFACE_VARIANT)
    c = cache(store, embedder, clock, threshold=s - 0.01, thresholds={"strict-model": 1.0})
    for model in ("chat-model", "strict-model"):
        await fill(c, "team-a", {**ask(QUESTION), "model": model})
    assert (await c.lookup("team-a", ask(SURFACE_VARIANT))).status is CacheStatus.SEMANTIC_HIT
    strict = await c.lookup("team-a", {**ask(SURFACE_VARIANT), "model": "strict-model"})
    assert strict.status is CacheStatus.MISS


async def test_teams_never_see_each_others_answers(
    store: StateStore, embedder: CountingEmbedder, clock: Clock
) -> None:
    c = cache(store, embedder, clock, threshold=0.5)
    await fill(c, "team-a", ask(QUESTION), "team-a's answer")
    for request in (ask(QUESTION), ask(SURFACE_VARIANT)):
        lookup = await c.lookup("team-b", request)
        assert lookup.status is CacheStatus.MISS and lookup.similarity is None
    assert (await c.lookup("team-a", ask(QUESTION))).status is CacheStatus.SEMANTIC_HIT


NEAR_MISSES = [
    ("How do I submit an expense report?", "How do I approve an expense report?"),
    ("Convert 100 USD to EUR.", "Convert 100 EUR to USD."),
    (
        "Draft a reminder for invoices overdue by 30 days.",
        "Draft a reminder for invoices overdue by 60 days.",
    ),
    ("Which invoices have been paid?", "Which invoices have not been paid?"),
]


@pytest.mark.parametrize(("cached", "asked"), NEAR_MISSES)
async def test_guards_keep_near_misses_apart_even_at_a_low_threshold(
    embedder: CountingEmbedder, clock: Clock, cached: str, asked: str
) -> None:
    store = MemoryStateStore(clock=clock)
    c = cache(store, embedder, clock, threshold=0.3)
    await fill(c, "team-a", ask(cached))
    assert (await c.lookup("team-a", ask(asked))).status is CacheStatus.MISS
    unguarded = cache(
        store,
        embedder,
        clock,
        threshold=0.3,
        match_content_words=False,
        match_numbers=False,
        match_negation=False,
    )
    await fill(unguarded, "team-b", ask(cached))
    assert (await unguarded.lookup("team-b", ask(asked))).status is CacheStatus.SEMANTIC_HIT


TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
UNCACHEABLE = {
    "tools": ask(QUESTION, tools=TOOLS),
    "tool_choice": ask(QUESTION, tool_choice="none"),
    "tool message": {
        **ask(QUESTION),
        "messages": [
            {"role": "user", "content": "Reset it"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "done"},
            {"role": "user", "content": QUESTION},
        ],
    },
    "sampled": {k: v for k, v in ask(QUESTION).items() if k != "temperature"},
    "assistant last": {**ask(QUESTION), "messages": [{"role": "assistant", "content": QUESTION}]},
    "image part": {
        **ask(QUESTION),
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}
        ],
    },
    "too long": ask("word " * 300),
    "japanese": ask("VPNのパスワードをリセットする方法を教えてください。"),
    "model not served": {**ask(QUESTION), "model": "other-model"},
}


@pytest.mark.parametrize("name", list(UNCACHEABLE))
async def test_requests_the_semantic_cache_never_answers(
    embedder: CountingEmbedder, clock: Clock, name: str
) -> None:
    c = cache(MemoryStateStore(clock=clock), embedder, clock, models=("chat-model",))
    lookup = await c.lookup("team-a", UNCACHEABLE[name])
    assert lookup.status is CacheStatus.UNCACHEABLE and lookup.ticket is None
    assert not await c.store(lookup, answer())
    assert embedder.calls == 0  # decided before any embedding is computed


async def test_prompt_truncated_by_the_embedder_is_skipped(
    embedder: CountingEmbedder, clock: Clock
) -> None:
    c = cache(MemoryStateStore(clock=clock), embedder, clock, max_input_tokens=8)
    assert (await c.lookup("team-a", ask("hi there"))).status is CacheStatus.MISS  # 4 tokens
    long = await c.lookup("team-a", ask("What is the notice period for resignation here?"))
    assert long.status is CacheStatus.UNCACHEABLE


async def test_earlier_turns_and_system_prompt_must_match_exactly(
    store: StateStore, embedder: CountingEmbedder, clock: Clock
) -> None:
    c = cache(store, embedder, clock, threshold=0.5)
    system = {"role": "system", "content": "You answer for the IT helpdesk."}
    turns = [system, {"role": "user", "content": QUESTION}]
    await fill(c, "team-a", {**ask(QUESTION), "messages": turns})
    same = await c.lookup(
        "team-a",
        {**ask(QUESTION), "messages": [system, {"role": "user", "content": SURFACE_VARIANT}]},
    )
    assert same.status is CacheStatus.SEMANTIC_HIT
    other_system = [{**system, "content": "You answer for HR."}, turns[1]]
    assert (
        await c.lookup("team-a", {**ask(QUESTION), "messages": other_system})
    ).status is CacheStatus.MISS
    no_system = await c.lookup("team-a", ask(QUESTION))
    assert no_system.status is CacheStatus.MISS
    other_params = await c.lookup("team-a", {**ask(QUESTION), "messages": turns, "max_tokens": 5})
    assert other_params.status is CacheStatus.MISS


async def test_entries_expire_with_the_ttl(embedder: CountingEmbedder, clock: Clock) -> None:
    store = MemoryStateStore(clock=clock)
    c = cache(store, embedder, clock, ttl_s=60)
    await fill(c, "team-a", ask(QUESTION))
    clock.now += 59
    assert (await c.lookup("team-a", ask(QUESTION))).status is CacheStatus.SEMANTIC_HIT
    clock.now += 2
    assert (await c.lookup("team-a", ask(QUESTION))).status is CacheStatus.MISS
    fresh = cache(store, embedder, clock, ttl_s=60)  # a replica that starts now sees nothing
    assert (await fresh.lookup("team-a", ask(QUESTION))).similarity is None


async def test_several_replicas_share_entries_through_redis(
    redis_url: str, embedder: CountingEmbedder, clock: Clock
) -> None:
    prefix = f"rgtest:{uuid.uuid4().hex}:"
    stores = [redis(redis_url, prefix), redis(redis_url, prefix)]
    one, two = (cache(s, embedder, clock) for s in stores)
    assert (await two.lookup("team-a", ask(QUESTION))).status is CacheStatus.MISS  # synced, empty
    await fill(one, "team-a", ask(QUESTION), "from replica one")
    seen = await two.lookup("team-a", ask(SURFACE_VARIANT))
    assert seen.status is CacheStatus.SEMANTIC_HIT and seen.hit is not None
    assert seen.hit.response["choices"][0]["message"]["content"] == "from replica one"
    # and back: replica two stores, replica one (which has synced before) finds it
    await fill(two, "team-a", ask("What are the office opening hours?"), "from replica two")
    back = await one.lookup("team-a", ask("What are the office opening hours, please?"))
    assert back.hit is not None
    assert back.hit.response["choices"][0]["message"]["content"] == "from replica two"
    for s in stores:
        await s.aclose()


async def test_sync_interval_bounds_store_reads(
    redis_url: str, embedder: CountingEmbedder, clock: Clock
) -> None:
    prefix = f"rgtest:{uuid.uuid4().hex}:"
    stores = [redis(redis_url, prefix), redis(redis_url, prefix)]
    one = cache(stores[0], embedder, clock)
    two = cache(stores[1], embedder, clock, sync_interval_s=5)
    assert (await two.lookup("team-a", ask(QUESTION))).status is CacheStatus.MISS
    await fill(one, "team-a", ask(QUESTION))
    clock.now += 4
    assert (await two.lookup("team-a", ask(QUESTION))).status is CacheStatus.MISS  # not yet read
    clock.now += 1
    assert (await two.lookup("team-a", ask(QUESTION))).status is CacheStatus.SEMANTIC_HIT
    for s in stores:
        await s.aclose()


async def test_each_scope_keeps_at_most_max_entries(
    store: StateStore, embedder: CountingEmbedder, clock: Clock
) -> None:
    questions = [f"What is the status of project {name}?" for name in ("alpha", "beta", "gamma")]
    writer = cache(store, embedder, clock, max_entries=2)
    for q in questions:
        await fill(writer, "team-a", ask(q))
    reader = cache(store, embedder, clock, max_entries=2)  # another replica, reading the log
    for replica in (writer, reader):
        first = await replica.lookup("team-a", ask(questions[0]))
        assert first.status is CacheStatus.MISS
        for q in questions[1:]:
            assert (await replica.lookup("team-a", ask(q))).status is CacheStatus.SEMANTIC_HIT


async def test_failures_are_misses_not_errors(embedder: CountingEmbedder, clock: Clock) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    gone = RedisStateStore(f"redis://127.0.0.1:{port}/0", prefix="rgtest:")
    c = cache(gone, embedder, clock)
    lookup = await c.lookup("team-a", ask(QUESTION))
    assert lookup.status is CacheStatus.MISS
    assert not await c.store(lookup, answer())
    assert c.stats.errors == 2  # the sync and the write
    await gone.aclose()

    healthy = cache(MemoryStateStore(clock=clock), embedder, clock)
    embedder.fail = True
    failed = await healthy.lookup("team-a", ask(QUESTION))
    assert failed.status is CacheStatus.MISS and healthy.stats.errors == 1
    assert not await healthy.store(failed, answer())
    embedder.fail = False
    assert await healthy.store(failed, answer())  # the embedder is back: stored after all


async def test_store_reuses_the_lookup_embedding(embedder: CountingEmbedder, clock: Clock) -> None:
    c = cache(MemoryStateStore(clock=clock), embedder, clock)
    lookup = await c.lookup("team-a", ask(QUESTION))
    assert await c.store(lookup, answer())
    assert embedder.calls == 1


@pytest.mark.parametrize("mode", [CacheMode.BYPASS, CacheMode.NO_STORE])
async def test_modes(embedder: CountingEmbedder, clock: Clock, mode: CacheMode) -> None:
    c = cache(MemoryStateStore(clock=clock), embedder, clock)
    await fill(c, "team-a", ask(QUESTION), "old")
    lookup: Lookup = await c.lookup("team-a", ask(QUESTION), mode=mode)
    assert lookup.status is CacheStatus.BYPASS and lookup.hit is None
    assert await c.store(lookup, answer("new")) is (mode is CacheMode.BYPASS)


async def test_layered_cache_prefers_exact_then_semantic(
    embedder: CountingEmbedder, clock: Clock
) -> None:
    from serve.cache.exact import ExactCache
    from serve.cache.policy import ExactCachePolicy

    store = MemoryStateStore(clock=clock)
    layered = ResponseCache(
        exact=ExactCache(store, ExactCachePolicy(), clock=clock),
        semantic=cache(store, embedder, clock),
    )
    first = await layered.lookup("team-a", ask(QUESTION))
    assert first.status is CacheStatus.MISS
    await layered.store(first, answer("portal"))
    exact = await layered.lookup("team-a", ask(QUESTION))
    assert exact.status is CacheStatus.HIT
    semantic = await layered.lookup("team-a", ask(SURFACE_VARIANT))
    assert semantic.status is CacheStatus.SEMANTIC_HIT and semantic.hit is not None
    with_tools = await layered.lookup("team-a", ask(SURFACE_VARIANT, tools=TOOLS))
    assert with_tools.status is CacheStatus.MISS  # exact looked; semantic may not
    sampled = await layered.lookup("team-a", {**ask(QUESTION), "temperature": 1})
    assert sampled.status is CacheStatus.UNCACHEABLE
    assert (
        await layered.lookup("team-a", ask(QUESTION), mode=CacheMode.NO_STORE)
    ).status is CacheStatus.BYPASS
