"""The clock seam: virtual time that lands exactly on deadlines, and `deadline` semantics."""

from __future__ import annotations

import asyncio

import pytest

from serve.routing.clock import FakeClock, SystemClock, deadline


async def test_fake_sleep_jumps_to_its_wake_up_time_firing_earlier_timers_in_order() -> None:
    clock = FakeClock(start=100.0)
    fired: list[tuple[str, float]] = []
    clock.call_later(3, lambda: fired.append(("three", clock.monotonic())))
    clock.call_later(1, lambda: fired.append(("one", clock.monotonic())))
    clock.call_later(9, lambda: fired.append(("nine", clock.monotonic())))
    await clock.sleep(5)
    assert clock.monotonic() == 105.0
    assert fired == [("one", 101.0), ("three", 103.0)]


async def test_cancelled_timers_do_not_fire() -> None:
    clock = FakeClock()
    fired: list[str] = []
    clock.call_later(1, lambda: fired.append("kept"))
    clock.call_later(2, lambda: fired.append("cancelled")).cancel()
    clock.advance(5)
    assert fired == ["kept"] and clock.monotonic() == 5.0


def test_advance_refuses_to_go_backwards() -> None:
    with pytest.raises(ValueError, match="backwards"):
        FakeClock().advance(-1)


@pytest.mark.parametrize(
    ("limit", "work", "timed_out", "ends_at"),
    [
        (5.0, 60.0, True, 5.0),  # cut off exactly at the limit
        (5.0, 4.0, False, 4.0),  # finishes in time
        (None, 60.0, False, 60.0),  # no limit
        (5.0, 5.0, True, 5.0),  # a tie goes to the deadline (it was set first)
    ],
)
async def test_deadline_on_fake_time(
    limit: float | None, work: float, timed_out: bool, ends_at: float
) -> None:
    clock = FakeClock()
    if timed_out:
        with pytest.raises(TimeoutError):
            async with deadline(clock, limit):
                await clock.sleep(work)
    else:
        async with deadline(clock, limit) as d:
            await clock.sleep(work)
        assert not d.expired
    assert clock.monotonic() == ends_at


async def test_deadline_that_did_not_expire_leaves_no_cancellation_behind() -> None:
    clock = FakeClock()
    async with deadline(clock, 5):
        await clock.sleep(1)
    await clock.sleep(10)  # past where the deadline would have fired: nothing happens
    assert clock.monotonic() == 11.0
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_outer_cancellation_is_not_turned_into_a_timeout() -> None:
    clock = FakeClock()
    entered = asyncio.Event()
    never = asyncio.Event()

    async def body() -> None:
        async with deadline(clock, 5):
            entered.set()
            await never.wait()

    task = asyncio.create_task(body())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_deadline_on_the_system_clock() -> None:
    never = asyncio.Event()
    with pytest.raises(TimeoutError):
        async with deadline(SystemClock(), 0.01):
            await never.wait()
    async with deadline(SystemClock(), 5) as d:
        await asyncio.sleep(0)
    assert not d.expired
