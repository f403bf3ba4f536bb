"""Output stream filter: secrets split across deltas, deny patterns, leakage, blocking."""

from __future__ import annotations

import pytest

from guardrails.leakage import LeakageMeter
from guardrails.pattern_tier import PatternDetector
from guardrails.policy import OutputPolicy
from guardrails.restore import RestoreMap
from guardrails.stream_filter import StreamFilter

DETECTOR = PatternDetector()
KEY = "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"
REPLY = f"Use the token {KEY} in the header, then retry."


def run(filt: StreamFilter, deltas: list[str]) -> tuple[str, bool]:
    out = []
    for delta in deltas:
        chunk = filt.feed(delta)
        out.append(chunk.text)
        if chunk.blocked:
            return "".join(out), True
    last = filt.finish()
    return "".join(out) + last.text, last.blocked


@pytest.mark.parametrize("cut", range(10, 60, 3))
def test_secret_split_across_deltas_is_masked(cut: int) -> None:
    text, blocked = run(StreamFilter(OutputPolicy(), DETECTOR), [REPLY[:cut], REPLY[cut:]])
    assert not blocked
    assert text == "Use the token **** in the header, then retry."


def test_stream_emits_before_the_end_and_holds_back_at_most_the_window() -> None:
    policy = OutputPolicy(stream_window=32)
    filt = StreamFilter(policy, DETECTOR)
    sent = ""
    body = "The quarterly numbers look fine. " * 10
    for i in range(0, len(body), 7):
        sent += filt.feed(body[i : i + 7]).text
        assert len(body[: i + 7]) - len(sent) <= 32 + 7
    assert sent and sent + filt.finish().text == body


def test_block_action_stops_the_stream_without_echoing_the_value() -> None:
    filt = StreamFilter(OutputPolicy(pii_action="block"), DETECTOR)
    text, blocked = run(filt, ["card 4111 1111 ", "1111 1111 thanks"])
    assert blocked and "4111" not in text
    assert filt.blocked_reason == "output contains CREDIT_CARD"
    assert filt.feed("more").blocked


def test_deny_pattern_split_across_deltas() -> None:
    filt = StreamFilter(OutputPolicy(deny_patterns=(r"(?i)project\s+falcon",)), DETECTOR)
    text, blocked = run(filt, ["The plan for Project ", "Falcon is secret"])
    assert blocked and "Falcon" not in text
    assert filt.blocked_reason == "output matches deny pattern 0"


def test_restores_placeholders_after_filtering() -> None:
    restore = RestoreMap({"<EMAIL_ADDRESS_1>": "jo@corp.example"})
    filt = StreamFilter(OutputPolicy(), DETECTOR, restore=restore)
    text, _ = run(filt, ["Sent to <EMAIL_", "ADDRESS_1> as asked."])
    assert text == "Sent to jo@corp.example as asked."


SYSTEM = (
    "You are the ACME support assistant. Answer only questions about ACME routers. Never "
    "offer refunds above 200 euros without a manager. Internal escalation code is 7731. "
    "Keep answers under 120 words and always end with a link to the help centre."
)


@pytest.mark.parametrize(
    ("response", "leaks"),
    [
        (SYSTEM, True),
        ("Sure! My instructions say: " + SYSTEM[:180] + " ...", True),
        ("I am the ACME support assistant. How can I help with your router?", False),
        ("Please visit the help centre for more on ACME routers.", False),
        ("Here is a summary of your order status.", False),
    ],
)
def test_leakage(response: str, leaks: bool) -> None:
    meter = LeakageMeter(SYSTEM, threshold=0.5)
    meter.feed(response)
    assert meter.leaked() is leaks


def test_long_verbatim_run_of_a_long_prompt_leaks() -> None:
    system = " ".join(f"Rule {i}: handle case {i * 7} by checking field {i}." for i in range(80))
    meter = LeakageMeter(system, threshold=0.5)
    meter.feed(system[1000:1300])
    assert meter.share() < 0.5 and meter.leaked()


def test_leakage_blocks_a_stream_in_japanese() -> None:
    system = (
        "あなたは社内の経費精算アシスタントです。承認者の氏名や社員番号を決して回答に含めないでください。"
        * 2
    )
    filt = StreamFilter(OutputPolicy(), DETECTOR, system_prompt=system)
    _, blocked = run(filt, [system[:30], system[30:]])
    assert blocked and filt.blocked_reason == "output reproduces the system prompt"
