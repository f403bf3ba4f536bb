"""The evaluation's scoring and its generated Japanese set."""

from __future__ import annotations

import pytest

from guardrails.eval import score_spans
from guardrails.eval_ja_dataset import generate
from guardrails.spans import Span


@pytest.mark.parametrize(
    ("gold", "predicted", "expected"),
    [
        ([("PERSON", 0, 5)], [Span("PERSON", 0, 5, 1)], (1, 1, 1)),
        ([("PERSON", 0, 5)], [Span("PERSON", 3, 9, 1)], (1, 1, 1)),  # overlap counts
        ([("PERSON", 0, 5)], [Span("PERSON", 5, 9, 1)], (0, 1, 1)),  # touching does not
        ([("PERSON", 0, 5)], [Span("EMAIL_ADDRESS", 0, 5, 1)], (0, 0, 1)),
        ([("PERSON", 0, 9)], [Span("PERSON", 0, 3, 1), Span("PERSON", 4, 9, 1)], (1, 2, 1)),
    ],
)
def test_score_spans(gold, predicted, expected) -> None:  # type: ignore[no-untyped-def]
    assert score_spans([(gold, predicted)], ["PERSON"])["PERSON"] == expected


def test_japanese_set_is_deterministic_and_spans_are_exact() -> None:
    first, second = generate(40), generate(40)
    assert first == second
    assert generate(40, seed=1) != first
    for example in first:
        for entity, start, end in example.spans:
            assert example.text[start:end].strip() == example.text[start:end], entity
