"""Retry classification, ``retry-after`` parsing and the backoff schedule."""

from __future__ import annotations

import random

import pytest

from serve.errors import (
    AuthenticationFailed,
    InternalError,
    InvalidRequest,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from serve.routing.policy import RetryPolicy
from serve.routing.retry import backoff_delay, is_retryable, retry_after_s


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (RateLimited("x"), True),
        (Overloaded("x"), True),
        (UpstreamError("x"), True),
        (UpstreamTimeout("x"), True),
        (ConnectionRefusedError(), True),
        (ConnectionResetError(), True),
        (InvalidRequest("x"), False),
        (AuthenticationFailed("x"), False),
        (PermissionDenied("x"), False),
        (NotFound("x"), False),
        (PayloadTooLarge("x"), False),
        (InternalError("x"), False),
        (ValueError("a bug"), False),
    ],
)
def test_only_backend_side_failures_are_retryable(error: BaseException, retryable: bool) -> None:
    assert is_retryable(error) is retryable


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"Retry-After": "0.5"}, 0.5),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": "-1"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "nan"}, None),
        ({}, None),
    ],
)
def test_retry_after_reads_delta_seconds(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_s(RateLimited("x", headers=headers)) == expected


def test_retry_after_of_a_non_gateway_error_is_none() -> None:
    assert retry_after_s(ConnectionResetError()) is None


def test_exponential_schedule_without_jitter_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay_s=0.2, max_delay_s=4.0, jitter="none")
    rng = random.Random(1)
    delays = [backoff_delay(policy, n, rng) for n in range(1, 9)]
    assert delays == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 4.0, 4.0, 4.0])


@pytest.mark.parametrize(
    ("jitter", "low_share"),
    [
        ("full", 0.0),  # anywhere in [0, ceiling]
        ("equal", 0.5),  # in [ceiling / 2, ceiling]
    ],
)
@pytest.mark.parametrize("failures", [1, 3, 6])
def test_jitter_stays_within_bounds_and_actually_spreads(
    jitter: str, low_share: float, failures: int
) -> None:
    policy = RetryPolicy.model_validate({"base_delay_s": 0.2, "max_delay_s": 4.0, "jitter": jitter})
    ceiling = min(4.0, 0.2 * 2 ** (failures - 1))
    rng = random.Random(failures)
    delays = [backoff_delay(policy, failures, rng) for _ in range(2000)]
    assert all(d is not None for d in delays)
    values = [d for d in delays if d is not None]
    low = ceiling * low_share
    assert all(low <= d <= ceiling for d in values)
    span = ceiling - low
    # Spread over the whole interval: draws near both ends, mean near the middle.
    assert min(values) < low + 0.05 * span and max(values) > ceiling - 0.05 * span
    assert sum(values) / len(values) == pytest.approx(low + span / 2, rel=0.05)


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        (0.0, 0.0),
        (1.5, 1.5),  # the backend's word beats the computed 0.2 s
        (4.0, 4.0),  # at the cap: still waited
        (4.5, None),  # longer than the cap: do not wait here, move on
    ],
)
def test_retry_after_replaces_backoff_up_to_max_delay(
    retry_after: float, expected: float | None
) -> None:
    policy = RetryPolicy(base_delay_s=0.2, max_delay_s=4.0, jitter="full")
    assert backoff_delay(policy, 1, random.Random(0), retry_after) == expected


def test_backoff_is_only_for_after_a_failure() -> None:
    with pytest.raises(ValueError, match="after a failure"):
        backoff_delay(RetryPolicy(), 0, random.Random(0))
