"""What the semantic cache may compare, and the guards' signatures, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from serve.cache.eligibility import (
    content_words,
    negated,
    non_ascii_ratio,
    numbers,
    semantic_query,
)
from serve.cache.policy import SemanticCachePolicy

POLICY = SemanticCachePolicy(enabled=True, embed_model="e")

SAME_WORDS = [
    ("How do I reset my VPN password?", "how do i reset my vpn password"),
    ("What are the office opening hours?", "What are the office opening hours, please?"),
    ("Explain the terms of our NDA.", "Can you explain the terms of our NDA?"),
    ("What's the refund policy?", "What is the refund policy"),
    ("List orders above $10,000.", "List orders above $10000"),
    ("List the invoices.", "List the invoice"),  # plural -s
    ("会議室を予約する方法は\uff1f", "会議室を予約する方法は?"),  # full-width "?" folded
]

DIFFERENT_WORDS = [
    ("How do I submit an expense report?", "How do I approve an expense report?"),
    ("Convert 100 USD to EUR.", "Convert 100 EUR to USD."),
    ("What is the price of the plan?", "What is the price of the Enterprise plan?"),
    ("When is the review?", "When was the review?"),
    ("What is revenue?", "What will revenue be?"),
    ("Which invoices have been paid?", "Which invoices haven't been paid?"),
    ("Can contractors log in?", "Can't contractors log in?"),
    ("What is our policy?", "What is their policy?"),
    ("会議室を予約する方法は", "会議室の予約をキャンセルする方法は"),
]


@pytest.mark.parametrize(("a", "b"), SAME_WORDS)
def test_same_content_words(a: str, b: str) -> None:
    assert content_words(a) == content_words(b)


@pytest.mark.parametrize(("a", "b"), DIFFERENT_WORDS)
def test_different_content_words(a: str, b: str) -> None:
    assert content_words(a) != content_words(b)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Invoices overdue by 30 days", ("30",)),
        ("A 15% discount on a $2,000 order", ("15", "2000")),
        ("売上上位５社", ("5",)),  # full-width digits
        ("No numbers here", ()),
    ],
)
def test_numbers(text: str, expected: tuple[str, ...]) -> None:
    assert numbers(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Which invoices have not been paid?", True),
        ("Which customers didn't renew?", True),
        ("Deals closed without a discount", True),
        ("契約を更新しなかった顧客", True),
        ("Which invoices have been paid?", False),
        ("Is there a notice period?", False),
    ],
)
def test_negated(text: str, expected: bool) -> None:
    assert negated(text) is expected


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("Reset my VPN password", 0.0, 0.0),
        ("VPNのパスワード", 0.5, 0.8),
        ("会議室", 1.0, 1.0),
        ("?!", 0, 0),
    ],
)
def test_non_ascii_ratio(text: str, low: float, high: float) -> None:
    assert low <= non_ascii_ratio(text) <= high


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "messages": [{"role": "user", "content": text}],
        "temperature": 0,
        **extra,
    }


def test_context_ignores_transport_and_bookkeeping() -> None:
    base = semantic_query(chat("How do I reset my VPN password?"), POLICY)
    other = semantic_query(chat("How do I reset my VPN password?", stream=True, user="u"), POLICY)
    assert base is not None and other is not None and base.context == other.context


def test_text_parts_are_joined_and_the_text_is_what_gets_embedded() -> None:
    parts = [{"type": "text", "text": "How do I reset"}, {"type": "text", "text": "my password?"}]
    query = semantic_query({**chat(""), "messages": [{"role": "user", "content": parts}]}, POLICY)
    assert query is not None and query.text == "How do I reset\nmy password?"


ALL_OFF = {"match_content_words": False, "match_numbers": False, "match_negation": False}


@pytest.mark.parametrize(
    ("guard", "a", "b"),
    [
        ("match_content_words", "How do I submit a report?", "How do I approve a report?"),
        ("match_numbers", "Top 5 customers", "Top 10 customers"),
        ("match_negation", "Which invoices were paid?", "Which invoices were not paid?"),
    ],
)
def test_each_guard_alone_keeps_its_near_miss_apart(guard: str, a: str, b: str) -> None:
    def contexts(policy: SemanticCachePolicy) -> tuple[str, str]:
        first, second = semantic_query(chat(a), policy), semantic_query(chat(b), policy)
        assert first is not None and second is not None
        return first.context, second.context

    unguarded = contexts(POLICY.model_copy(update=ALL_OFF))
    assert unguarded[0] == unguarded[1]
    guarded = contexts(POLICY.model_copy(update={**ALL_OFF, guard: True}))
    assert guarded[0] != guarded[1]


def test_non_ascii_guard_threshold() -> None:
    japanese = chat("VPNのパスワードをリセットする方法を教えてください。")
    assert semantic_query(japanese, POLICY) is None
    assert semantic_query(japanese, POLICY.model_copy(update={"max_non_ascii_ratio": 1.0}))
