"""Redaction modes, request walking, reversible round trips and the streaming restorer."""

from __future__ import annotations

import copy
import json
import pickle
from typing import Any

import pytest

from guardrails.pattern_tier import PatternDetector
from guardrails.policy import EntityAction, PiiPolicy
from guardrails.redaction import RedactionSession
from guardrails.request_redaction import redact_request
from guardrails.restore import RestoreMap, StreamRestorer
from guardrails.spans import Span

DETECTOR = PatternDetector()
TEXT = "mail a@x.io, b@x.io, a@x.io"
SPANS = [Span("EMAIL_ADDRESS", 5, 11, 0.9), Span("EMAIL_ADDRESS", 13, 19, 0.9),
         Span("EMAIL_ADDRESS", 21, 27, 0.9)]  # fmt: skip


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (EntityAction.MASK, "mail ****, ****, ****"),
        (EntityAction.PLACEHOLDER, "mail <EMAIL_ADDRESS_1>, <EMAIL_ADDRESS_2>, <EMAIL_ADDRESS_1>"),
        (EntityAction.REVERSIBLE, "mail <EMAIL_ADDRESS_1>, <EMAIL_ADDRESS_2>, <EMAIL_ADDRESS_1>"),
        (EntityAction.OFF, TEXT),
    ],
)
def test_modes(action: EntityAction, expected: str) -> None:
    session = RedactionSession()
    assert session.redact(TEXT, SPANS, lambda _: action) == expected
    restore = session.restore_map()
    assert bool(restore) is (action is EntityAction.REVERSIBLE)
    assert restore.restore(expected) == (TEXT if action is EntityAction.REVERSIBLE else expected)


def chat(content: Any, **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": content}], **extra}


def test_request_is_not_mutated_and_every_site_is_redacted() -> None:
    request = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Escalate to ops@corp.example"},
            {"role": "user", "content": [{"type": "text", "text": "I am at 090-1234-5678"},
                                          {"type": "image_url", "image_url": {"url": "x"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {
                    "name": "lookup", "arguments": json.dumps({"email": "jo@corp.example",
                                                              "password": "Pa55word!"})}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "card 4111 1111 1111 1111"},
        ],
    }  # fmt: skip
    original = copy.deepcopy(request)
    result = redact_request(request, PiiPolicy(), DETECTOR)
    assert request == original
    messages = result.request["messages"]
    assert messages[0]["content"] == "Escalate to <EMAIL_ADDRESS_1>"
    assert messages[1]["content"][0]["text"] == "I am at <PHONE_NUMBER_1>"
    assert messages[1]["content"][1] == original["messages"][1]["content"][1]
    arguments = json.loads(messages[2]["tool_calls"][0]["function"]["arguments"])
    assert arguments == {"email": "<EMAIL_ADDRESS_2>", "password": "<PASSWORD_1>"}
    assert messages[3]["content"] == "card <CREDIT_CARD_1>"
    assert result.counts == {"EMAIL_ADDRESS": 2, "PHONE_NUMBER": 1, "PASSWORD": 1,
                             "CREDIT_CARD": 1}  # fmt: skip
    # PII is reversible by default, secrets are not.
    assert set(result.restore.values) == {"<EMAIL_ADDRESS_1>", "<EMAIL_ADDRESS_2>",
                                          "<PHONE_NUMBER_1>", "<CREDIT_CARD_1>"}  # fmt: skip


def test_counts_and_repr_hold_no_values() -> None:
    result = redact_request(chat("secret alice@example.com"), PiiPolicy(), DETECTOR)
    assert "alice" not in repr(result.counts) + repr(result.restore)


def test_per_entity_override_and_disable() -> None:
    policy = PiiPolicy(entities={"EMAIL_ADDRESS": EntityAction.OFF, "PHONE_NUMBER": "mask"})
    result = redact_request(chat("a@b.io 090-1234-5678"), policy, DETECTOR)
    assert result.request["messages"][0]["content"] == "a@b.io ****"
    off = redact_request(chat("a@b.io"), PiiPolicy(enabled=False), DETECTOR)
    assert off.request["messages"][0]["content"] == "a@b.io" and not off.counts


def test_ner_spans_from_elsewhere_are_used() -> None:
    text = "山本一郎さんの件"
    ner = {text: [Span("PERSON", 0, 4, 0.7, "ginza")]}
    result = redact_request(chat(text), PiiPolicy(), DETECTOR, ner)
    assert result.request["messages"][0]["content"] == "<PERSON_1>さんの件"


def test_restore_map_pickles() -> None:
    restore = RestoreMap({"<EMAIL_ADDRESS_1>": "a@b.io"})
    assert pickle.loads(pickle.dumps(restore)).restore("<EMAIL_ADDRESS_1>") == "a@b.io"


RESTORE = RestoreMap({"<EMAIL_ADDRESS_1>": "a@b.io", "<PERSON_12>": "Jo"})
REPLY = "Hi <PERSON_12>, I wrote to <EMAIL_ADDRESS_1>. <3 <EMAIL_ADDRESS_9> <"


@pytest.mark.parametrize("cut", range(len(REPLY) + 1))
def test_stream_restorer_any_two_way_split(cut: int) -> None:
    restorer = StreamRestorer(RESTORE)
    out = restorer.feed(REPLY[:cut]) + restorer.feed(REPLY[cut:]) + restorer.finish()
    assert out == RESTORE.restore(REPLY)
    assert out == "Hi Jo, I wrote to a@b.io. <3 <EMAIL_ADDRESS_9> <"


def test_stream_restorer_char_by_char_holds_back_a_bounded_tail() -> None:
    restorer = StreamRestorer(RESTORE)
    pieces = []
    for char in REPLY:
        pieces.append(restorer.feed(char))
        assert len(restorer._held) < RESTORE.longest
    assert "".join(pieces) + restorer.finish() == RESTORE.restore(REPLY)
