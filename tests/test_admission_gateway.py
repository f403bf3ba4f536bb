"""Limits, budgets, cost and request records through the real gateway and HTTP edge.

Two gateways sharing the real Redis stand for two ingress replicas (each has its own
connection pool, admission scripts and caches, exactly as two Serve replicas do); the
client is the official `openai` SDK; the backend is the loopback OpenAI-compatible fake.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import openai
import pytest
from asgi_client import sdk
from fake_upstream import FakeUpstream
from openapi_contract import validate

from serve.api.app import create_app, with_context
from serve.bootstrap import build_gateway
from serve.call import Call
from serve.config import parse_platform_config
from serve.gateway import Gateway
from serve.openai_requests import ChatCompletionRequest
from serve.record import RequestRecord

KEY_A = "sk-rg-admit0001-" + "a" * 32
KEY_B = "sk-rg-admit0002-" + "b" * 32
KEY_CAPPED = "sk-rg-admit0003-" + "c" * 32
MESSAGES: Any = [{"role": "user", "content": "Hello there"}]
# $1 per output token: the fake upstream answers 4 completion tokens (3 when streaming).
PRICE = {"effective_from": "2026-01-01", "input_per_mtok": 0, "output_per_mtok": 1_000_000}


class Recorder:
    """A RequestObserver that keeps what it is given."""

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    def observe(self, record: RequestRecord) -> None:
        self.records.append(record)

    async def aclose(self) -> None:
        return None


class Webhook:
    """A loopback receiver for budget alerts."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        received = self.payloads

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["content-length"])
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.stop()


def args(upstream: FakeUpstream, tmp: Path, state: dict[str, Any], hook: str) -> dict[str, Any]:
    model = {"kind": "openai_compatible", "base_url": upstream.base_url, "model": "fake-upstream"}
    return {
        "state": state,
        "database": {"url": f"sqlite+aiosqlite:///{tmp}/admission.db"},
        "ingress": {"num_replicas": 2} if state["backend"] == "redis" else {},
        "teams": [
            {"name": "alpha", "limits": {"rpm": 7}},
            {"name": "beta", "limits": {"concurrent": 1}, "key_limits": {"tpm": 10_000}},
            {"name": "payers", "budget": {"monthly_usd": 10, "alerts": [0.5, 0.8, 1.0]}},
        ],
        "keys": [
            {"team": "alpha", "name": "a", "key": "env:RG_ADMIT_A"},
            {"team": "beta", "name": "b", "key": "env:RG_ADMIT_B"},
            {"team": "payers", "name": "c", "key": "env:RG_ADMIT_C"},
        ],
        "models": [
            {"name": "priced", "backend": model, "tasks": ["chat"], "pricing": [PRICE]},
            {
                "name": "failing",
                "backend": {**model, "model": "fail-500"},
                "tasks": ["chat"],
                "reliability": {"retry": {"max_attempts": 1}},
            },
            {
                "name": "old",
                "backend": model,
                "tasks": ["chat"],
                "deprecation": {
                    "deprecated_on": "2026-11-01",
                    "sunset_on": "2027-02-01",
                    "replacement": "priced",
                },
            },
        ],
        "cache": {"exact": {"enabled": False}},
        "admission": {"alerts": {"webhook_url": hook}},
    }


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RG_ADMIT_A", KEY_A)
    monkeypatch.setenv("RG_ADMIT_B", KEY_B)
    monkeypatch.setenv("RG_ADMIT_C", KEY_CAPPED)


async def replicas(
    n: int, upstream: FakeUpstream, tmp: Path, state: dict[str, Any], hook: str
) -> list[tuple[Gateway, Recorder, Any]]:
    config = parse_platform_config(args(upstream, tmp, state, hook))
    made = []
    for _ in range(n):
        recorder = Recorder()
        gateway = await build_gateway(config, {}, observers=[recorder])
        made.append((gateway, recorder, with_context(create_app(gateway), gateway, False)))
    return made


@pytest.fixture
async def shared(
    env: None, upstream: FakeUpstream, tmp_path: Path, redis_url: str, webhook: Webhook
) -> AsyncIterator[list[tuple[Gateway, Recorder, Any]]]:
    state = {"backend": "redis", "url": redis_url, "key_prefix": f"rgtest:{uuid.uuid4().hex}:"}
    made = await replicas(2, upstream, tmp_path, state, webhook.url)
    yield made
    for gateway, _, _ in made:
        await gateway.aclose()


@pytest.fixture
async def single(
    env: None, upstream: FakeUpstream, tmp_path: Path, webhook: Webhook
) -> AsyncIterator[tuple[Gateway, Recorder, Any]]:
    (made,) = await replicas(1, upstream, tmp_path, {"backend": "memory"}, webhook.url)
    yield made
    await made[0].aclose()


async def status_of(client: openai.AsyncOpenAI, **kwargs: Any) -> int:
    try:
        await client.chat.completions.create(messages=MESSAGES, **kwargs)
    except openai.APIStatusError as exc:
        return exc.status_code
    return 200


# -- exact limits across replicas ---------------------------------------------------------


async def test_a_burst_across_two_replicas_admits_exactly_the_rpm_limit(
    shared: list[tuple[Gateway, Recorder, Any]],
) -> None:
    clients = [sdk(app, KEY_A) for _, _, app in shared]
    statuses = await asyncio.gather(*(status_of(clients[i % 2], model="priced") for i in range(30)))
    assert statuses.count(200) == 7 and statuses.count(429) == 23


async def test_a_refusal_is_an_openai_429_with_retry_after_and_ratelimit_headers(
    single: tuple[Gateway, Recorder, Any],
) -> None:
    client = sdk(single[2], KEY_A)
    for _ in range(7):
        ok = await client.chat.completions.with_raw_response.create(
            model="priced", messages=MESSAGES
        )
        assert ok.headers["x-ratelimit-limit-requests"] == "7"
    assert ok.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="priced", messages=MESSAGES)
    response = caught.value.response
    validate("ErrorResponse", response.json())
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert response.headers["x-ratelimit-reset-requests"].endswith("s")


# -- budgets: reservations, settlement, alerts -----------------------------------------------


async def test_concurrent_requests_never_push_spend_past_the_budget(
    shared: list[tuple[Gateway, Recorder, Any]], webhook: Webhook
) -> None:
    webhook.payloads.clear()
    clients = [sdk(app, KEY_CAPPED) for _, _, app in shared]
    # Worst case per request: max_tokens 4 x $1 = $4; the fake answers 4 tokens: $4 each.
    statuses = await asyncio.gather(
        *(status_of(clients[i % 2], model="priced", max_tokens=4) for i in range(12))
    )
    assert statuses.count(200) == 2 and statuses.count(429) == 10
    records = [r for _, recorder, _ in shared for r in recorder.records]
    spent = sum(r.cost_usd for r in records)
    assert spent == pytest.approx(8.0) and spent <= 10
    refused = [r for r in records if r.status == 429]
    assert {r.error_code for r in refused} == {"insufficient_quota"}
    assert all(r.outcome == "rejected" for r in refused)
    for gateway, _, _ in shared:
        assert gateway.admission is not None
        await gateway.admission.drain_alerts()
    # $8 of $10 crossed 50% and 80%: one alert each, though two replicas settled.
    assert sorted(p["threshold"] for p in webhook.payloads) == [0.5, 0.8]
    assert {p["team"] for p in webhook.payloads} == {"payers"}


async def test_budget_refusal_says_insufficient_quota(
    single: tuple[Gateway, Recorder, Any],
) -> None:
    client = sdk(single[2], KEY_CAPPED)
    with pytest.raises(openai.RateLimitError) as caught:  # worst case $11 > $10
        await client.chat.completions.create(model="priced", messages=MESSAGES, max_tokens=11)
    body = caught.value.response.json()
    validate("ErrorResponse", body)
    assert body["error"]["type"] == "insufficient_quota"


# -- every path releases what was reserved ---------------------------------------------------


async def test_a_failing_backend_releases_the_concurrency_slot(
    single: tuple[Gateway, Recorder, Any],
) -> None:
    client = sdk(single[2], KEY_B)  # team beta: one request at a time
    for _ in range(3):
        assert await status_of(client, model="failing") == 502
    assert await status_of(client, model="priced") == 200


async def test_an_abandoned_stream_releases_its_slot_and_is_recorded_as_cancelled(
    single: tuple[Gateway, Recorder, Any],
) -> None:
    gateway, recorder, _ = single
    principal = await gateway.authenticate(f"Bearer {KEY_B}")
    request = ChatCompletionRequest.model_validate(
        {"model": "priced", "messages": MESSAGES, "stream": True}
    )
    call = Call("req-abandoned", "chat", observers=gateway.observers, stream=True)
    served = await gateway.chat_stream(principal, request, call)
    assert served.first["choices"][0]["delta"].get("role") == "assistant"
    await served.rest.aclose()  # type: ignore[attr-defined]  # the client went away
    (record,) = [r for r in recorder.records if r.request_id == "req-abandoned"]
    assert record.outcome == "cancelled" and record.team == "beta"
    client = sdk(single[2], KEY_B)
    assert await status_of(client, model="priced") == 200  # the slot came back


async def test_a_stream_is_priced_from_its_usage_chunk(
    single: tuple[Gateway, Recorder, Any],
) -> None:
    _, recorder, app = single
    stream = await sdk(app, KEY_CAPPED).chat.completions.create(
        model="priced", messages=MESSAGES, stream=True, max_tokens=5
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Hello from upstream."
    (record,) = [r for r in recorder.records if r.stream]
    assert record.output_tokens == 3 and record.cost_usd == pytest.approx(3.0)
    assert record.outcome == "ok" and record.status == 200 and record.ttft_ms is not None


async def test_a_stream_past_its_reservation_is_cut_with_a_final_length_chunk(
    single: tuple[Gateway, Recorder, Any],
) -> None:
    # The fake streams three content chunks whatever max_tokens says; beta has a TPM limit,
    # so the reservation (max_tokens=1) is enforced on the stream itself.
    stream = await sdk(single[2], KEY_B).chat.completions.create(
        model="priced", messages=MESSAGES, stream=True, max_tokens=1
    )
    chunks = [c async for c in stream]
    for chunk in chunks:
        validate(
            "CreateChatCompletionStreamResponse", chunk.model_dump(mode="json", exclude_unset=True)
        )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello"
    assert chunks[-1].choices[0].finish_reason == "length"


# -- records and headers -------------------------------------------------------------------


async def test_every_request_leaves_exactly_one_record(
    single: tuple[Gateway, Recorder, Any],
) -> None:
    _, recorder, app = single
    client = sdk(app, KEY_A)
    outcomes = [
        await status_of(client, model="priced"),
        await status_of(client, model="failing"),
        await status_of(client, model="no-such-model"),
        await status_of(sdk(app, "sk-rg-nope0000-" + "0" * 32), model="priced"),
    ]
    assert outcomes == [200, 502, 404, 401]
    assert [(r.status, r.outcome) for r in recorder.records] == [
        (200, "ok"),
        (502, "error"),
        (404, "rejected"),
        (401, "rejected"),
    ]
    first = recorder.records[0]
    assert first.team == "alpha" and first.model_served == "priced"
    assert first.provider == "openai_compatible" and first.cost_usd == pytest.approx(4.0)
    assert recorder.records[3].team is None
    assert len({r.request_id for r in recorder.records}) == 4


async def test_a_deprecated_model_says_so(single: tuple[Gateway, Recorder, Any]) -> None:
    raw = await sdk(single[2], KEY_A).chat.completions.with_raw_response.create(
        model="old", messages=MESSAGES
    )
    assert raw.headers["deprecation"] == "@1793491200"  # 2026-11-01T00:00:00Z
    assert raw.headers["sunset"] == "Mon, 01 Feb 2027 00:00:00 GMT"
    assert raw.headers["x-raygate-replacement"] == "priced"


# -- the shared state goes away --------------------------------------------------------------


@pytest.mark.parametrize(("mode", "expected"), [("fail_closed", 503), ("fail_open", 200)])
async def test_redis_down_follows_the_configured_mode(
    env: None, upstream: FakeUpstream, tmp_path: Path, mode: str, expected: int
) -> None:
    raw = args(upstream, tmp_path, {"backend": "redis", "url": "redis://127.0.0.1:1"}, "")
    raw["admission"] = {"on_state_unavailable": mode, "fail_open_rpm": 2}
    raw["cache"] = {"exact": {"enabled": False}}
    gateway = await build_gateway(parse_platform_config(raw), {})
    try:
        client = sdk(with_context(create_app(gateway), gateway, False), KEY_A)
        statuses = [await status_of(client, model="priced") for _ in range(3)]
        assert gateway.admission is not None and gateway.admission.state_failures >= 1
    finally:
        await gateway.aclose()
    if mode == "fail_open":
        assert statuses == [200, 200, 429]  # the local fallback limit: 2 per minute per key
    else:
        assert statuses == [503, 503, 503]


async def test_a_timed_out_backend_releases_the_concurrency_slot(env: None, tmp_path: Path) -> None:
    from fault_server import FaultServer

    server = FaultServer()
    server.start()
    try:
        raw = {
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path}/timeout.db"},
            "teams": [{"name": "beta", "limits": {"concurrent": 1}}],
            "keys": [{"team": "beta", "name": "b", "key": "env:RG_ADMIT_B"}],
            "models": [
                {
                    "name": name,
                    "backend": {
                        "kind": "openai_compatible",
                        "base_url": server.base_url,
                        "model": upstream_model,
                    },
                    "tasks": ["chat"],
                    "reliability": {"timeout_s": 0.3, "retry": {"max_attempts": 1}},
                }
                for name, upstream_model in (("stuck", "hang"), ("fine", "ok"))
            ],
            "cache": {"exact": {"enabled": False}},
        }
        gateway = await build_gateway(parse_platform_config(raw), {})
        try:
            client = sdk(with_context(create_app(gateway), gateway, False), KEY_B)
            assert [await status_of(client, model="stuck") for _ in range(2)] == [504, 504]
            assert await status_of(client, model="fine") == 200  # the slot came back each time
        finally:
            await gateway.aclose()
    finally:
        server.stop()
