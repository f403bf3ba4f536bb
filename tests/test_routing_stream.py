"""Streaming execution: fallback before the first chunk, errors after it, time limits,
cancellation; every upstream iterator is closed and no task is left behind."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from serve.errors import InvalidRequest, RateLimited, UpstreamError, UpstreamTimeout
from serve.routing.clock import FakeClock
from serve.routing.executor import Attempt, Executor, Stream
from serve.routing.policy import ReliabilityPolicy


@dataclass(frozen=True)
class Pause:
    """Send nothing for ``seconds`` of fake time."""

    seconds: float


@dataclass
class Gate:
    """Block until released, saying when the upstream got there (real-event sync)."""

    reached: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Upstreams:
    """Scripted streaming backends: each open of a model takes its next script (the last
    repeats); a script is a list of chunks, exceptions to raise, `Pause`s and `Gate`s.

    ``kind`` "generator" answers with an async generator (which finalizes itself when an
    exception leaves it); "iterator" with a plain async iterator that releases its
    connection only in ``aclose``, as a hand-written client stream would. Both must end
    up closed: the second proves the executor closes what it opened.
    """

    clock: FakeClock
    scripts: dict[str, list[list[Any]]]
    kind: str = "generator"
    opened: list[tuple[str, float]] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)

    def __call__(self, model: str) -> AsyncIterator[str]:
        scripts = self.scripts[model]
        steps = iter(scripts.pop(0) if len(scripts) > 1 else scripts[0])
        if self.kind == "iterator":
            return ScriptedIterator(self, model, steps)
        return self._generate(model, steps)

    async def next_chunk(self, steps: Iterator[Any]) -> str:
        for step in steps:
            if isinstance(step, BaseException):
                raise step
            if isinstance(step, Pause):
                await self.clock.sleep(step.seconds)
            elif isinstance(step, Gate):
                step.reached.set()
                await step.release.wait()
            else:
                return str(step)
        raise StopAsyncIteration

    async def _generate(self, model: str, steps: Iterator[Any]) -> AsyncIterator[str]:
        self.opened.append((model, self.clock.monotonic()))
        try:
            while True:
                try:
                    chunk = await self.next_chunk(steps)
                except StopAsyncIteration:
                    return
                yield chunk
        finally:
            self.closed.append(model)


class ScriptedIterator:
    def __init__(self, upstreams: Upstreams, model: str, steps: Iterator[Any]) -> None:
        self._upstreams = upstreams
        self._model = model
        self._steps = steps
        self._started = False
        self._closed = False

    def __aiter__(self) -> ScriptedIterator:
        return self

    async def __anext__(self) -> str:
        if not self._started:
            self._started = True
            self._upstreams.opened.append((self._model, self._upstreams.clock.monotonic()))
        if self._closed:
            raise StopAsyncIteration
        return await self._upstreams.next_chunk(self._steps)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._upstreams.closed.append(self._model)


def policy(**overrides: Any) -> ReliabilityPolicy:
    retry = {"jitter": "none", **overrides.pop("retry", {})}
    return ReliabilityPolicy.model_validate({**overrides, "retry": retry})


@pytest.fixture(params=["generator", "iterator"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def setup(
    kind: str, policies: dict[str, ReliabilityPolicy] | None = None, **scripts: list[list[Any]]
) -> tuple[Executor, Upstreams, list[Attempt]]:
    clock = FakeClock()
    seen: list[Attempt] = []
    executor = Executor(
        policies, default=policy(), clock=clock, rng=random.Random(0), on_attempt=seen.append
    )
    upstreams = Upstreams(clock, {m: list(s) for m, s in scripts.items()}, kind)
    return executor, upstreams, seen


async def drain(stream: Stream[str]) -> list[str]:
    async with stream:
        return [chunk async for chunk in stream]


@contextlib.contextmanager
def no_task_left_behind() -> Iterator[None]:
    """Time limits run in the caller's task: the executor must not leave any task behind."""
    before = asyncio.all_tasks()
    yield
    assert asyncio.all_tasks() - before == set()


ONE_TRY = policy(first_token_timeout_s=2, retry={"max_attempts": 1})


@pytest.mark.parametrize(
    ("primary", "fallback_opened_at"),
    [
        ([UpstreamError("boom")], 0.0),
        ([RateLimited("slow down")], 0.0),
        ([ConnectionResetError()], 0.0),
        ([], 0.0),  # ended without a single chunk
        ([Pause(3600), "too late"], 2.0),  # no first token within first_token_timeout_s
    ],
)
async def test_a_failure_before_the_first_chunk_falls_back_transparently(
    primary: list[Any], fallback_opened_at: float, kind: str
) -> None:
    with no_task_left_behind():
        executor, upstreams, _ = setup(kind, {"a": ONE_TRY}, a=[primary], b=[["b1", "b2", "b3"]])
        stream = await executor.stream(("a", "b"), upstreams)
        assert (stream.model, stream.primary, stream.fallback_used) == ("b", "a", True)
        assert await drain(stream) == ["b1", "b2", "b3"]
        assert upstreams.opened == [("a", 0.0), ("b", fallback_opened_at)]
        assert sorted(upstreams.closed) == ["a", "b"]
        assert [a.result for a in stream.attempts] == [
            "timeout" if fallback_opened_at else "failed",
            "ok",
        ]


async def test_before_the_first_chunk_the_same_model_is_retried_first(kind: str) -> None:
    executor, upstreams, _ = setup(kind, a=[[UpstreamError("blip")], ["a1", "a2"]], b=[["b1"]])
    stream = await executor.stream(("a", "b"), upstreams)
    assert stream.model == "a" and not stream.fallback_used
    assert await drain(stream) == ["a1", "a2"]
    assert upstreams.opened == [("a", 0.0), ("a", 0.2)]


async def test_a_failure_after_the_first_chunk_propagates_and_closes_the_upstream(
    kind: str,
) -> None:
    with no_task_left_behind():
        mid = UpstreamError("The model backend failed during the stream.")
        executor, upstreams, _ = setup(kind, a=[["a1", "a2", mid, "never"]], b=[["b1"]])
        stream = await executor.stream(("a", "b"), upstreams)
        received = []
        with pytest.raises(UpstreamError) as info:
            async for chunk in stream:
                received.append(chunk)
        assert info.value is mid
        assert received == ["a1", "a2"]
        assert [m for m, _ in upstreams.opened] == ["a"]  # no fallback once chunks went out
        assert upstreams.closed == ["a"] and stream.closed
        with pytest.raises(StopAsyncIteration):
            await anext(stream)


async def test_no_first_token_and_no_fallback_is_a_504_before_any_chunk(kind: str) -> None:
    with no_task_left_behind():
        executor, upstreams, _ = setup(
            kind, {"a": policy(first_token_timeout_s=2)}, a=[[Pause(3600)]]
        )
        with pytest.raises(UpstreamTimeout) as info:
            await executor.stream(("a",), upstreams)
        assert "within 2 s" in info.value.message
        assert upstreams.opened == [("a", 0.0)]  # a timed-out model is not retried
        assert upstreams.closed == ["a"] and upstreams.clock.monotonic() == 2.0


async def test_silence_after_the_first_chunk_hits_the_idle_timeout(kind: str) -> None:
    with no_task_left_behind():
        executor, upstreams, _ = setup(
            kind, {"a": policy(idle_timeout_s=3)}, a=[["a1", Pause(3600), "a2"]]
        )
        stream = await executor.stream(("a",), upstreams)
        assert await anext(stream) == "a1"
        with pytest.raises(UpstreamTimeout) as info:
            await anext(stream)
        assert upstreams.clock.monotonic() == 3.0
        assert info.value.status == 504 and "sent nothing for 3 s" in info.value.message
        assert upstreams.closed == ["a"] and stream.closed


async def test_a_long_answer_that_keeps_flowing_is_never_cut(kind: str) -> None:
    chunks: list[Any] = ["c0"]
    for i in range(1, 10):
        chunks += [Pause(2.5), f"c{i}"]
    executor, upstreams, _ = setup(
        kind, {"a": policy(first_token_timeout_s=1, idle_timeout_s=3, timeout_s=5)}, a=[chunks]
    )
    stream = await executor.stream(("a",), upstreams)
    assert await drain(stream) == [f"c{i}" for i in range(10)]
    assert upstreams.clock.monotonic() == pytest.approx(22.5)  # far past every single limit


async def test_cancelling_the_consumer_mid_stream_closes_the_upstream(kind: str) -> None:
    with no_task_left_behind():
        gate = Gate()
        executor, upstreams, _ = setup(kind, a=[["a1", gate, "a2"]])
        stream = await executor.stream(("a",), upstreams)
        received: list[str] = []

        async def consume() -> None:
            async with stream:
                async for chunk in stream:
                    received.append(chunk)

        task = asyncio.create_task(consume())
        await gate.reached.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert received == ["a1"]
        assert upstreams.closed == ["a"] and stream.closed
        assert executor.breaker("a").consecutive_failures == 0


async def test_cancelling_before_the_first_chunk_closes_the_upstream_and_frees_the_probe(
    kind: str,
) -> None:
    with no_task_left_behind():
        gate = Gate()
        executor, upstreams, seen = setup(
            kind,
            {"a": policy(retry={"max_attempts": 1}, breaker={"failure_threshold": 1})},
            a=[[UpstreamError("down")], [gate, "a1"]],
            b=[["b1"]],
        )
        await drain(await executor.stream(("a", "b"), upstreams))  # a fails: its breaker opens
        upstreams.clock.advance(30)
        assert executor.breaker("a").state == "half_open"
        task = asyncio.create_task(executor.stream(("a", "b"), upstreams))
        await gate.reached.wait()  # the probe is waiting for a's first token
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert seen[-1].result == "cancelled"
        assert upstreams.closed.count("a") == 2
        assert [m for m, _ in upstreams.opened] == ["a", "b", "a"]  # no fallback after a cancel
        assert executor.breaker("a").state == "half_open"
        assert executor.breaker("a").admit() is not None  # the probe slot was given back


async def test_leaving_early_closes_the_upstream(kind: str) -> None:
    executor, upstreams, _ = setup(kind, a=[["a1", "a2", "a3"]])
    async with await executor.stream(("a",), upstreams) as stream:
        assert await anext(stream) == "a1"
    assert upstreams.closed == ["a"]
    await stream.aclose()  # closing twice is harmless
    assert upstreams.closed == ["a"]


async def test_a_client_error_before_the_first_chunk_is_raised_without_fallback(kind: str) -> None:
    bad = InvalidRequest("max_tokens is too large", code="upstream_invalid_request")
    executor, upstreams, _ = setup(kind, a=[[bad]], b=[["b1"]])
    with pytest.raises(InvalidRequest) as info:
        await executor.stream(("a", "b"), upstreams)
    assert info.value is bad
    assert [m for m, _ in upstreams.opened] == ["a"] and upstreams.closed == ["a"]


async def test_the_first_chunk_of_a_half_open_probe_closes_the_breaker(kind: str) -> None:
    gate = Gate()
    executor, upstreams, _ = setup(
        kind,
        {"a": policy(retry={"max_attempts": 1}, breaker={"failure_threshold": 1})},
        a=[[UpstreamError("down")], ["a1", gate, "a2"]],
        b=[["b1"]],
    )
    await drain(await executor.stream(("a", "b"), upstreams))
    upstreams.clock.advance(30)
    stream = await executor.stream(("a", "b"), upstreams)
    # Closed on the first token, not at the end: a long answer does not hold the breaker.
    assert stream.model == "a" and executor.breaker("a").state == "closed"
    gate.release.set()
    assert await drain(stream) == ["a1", "a2"]
