"""The pattern tier asks Presidio only for entity types some pattern can match: that
must never change what is found. Checked against an ungated detector over the shared
English PII set and the generated Japanese set."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from shared_data_rule import shared_data_missing

from guardrails.eval_ja_dataset import generate
from guardrails.pattern_tier import PatternDetector
from guardrails.shared_data import default_shared_dir


def pii_set() -> Path:
    path = Path(os.environ.get("RAYGATE_SHARED_DATA", default_shared_dir())) / "pii"
    path = path / "presidio_synth_dataset_v2.json"
    if not path.is_file():
        shared_data_missing(f"development data not found at {path}")
    return path


class Ungated(PatternDetector):
    def _candidates(self, text: str) -> list[str]:
        return sorted({e for e, _ in self._gates} | self._always)


@pytest.fixture(scope="module")
def detectors() -> tuple[PatternDetector, PatternDetector]:
    return PatternDetector(), Ungated()


def test_gating_finds_exactly_what_the_full_analysis_finds(
    detectors: tuple[PatternDetector, PatternDetector],
) -> None:
    gated, full = detectors
    texts = [row["full_text"] for row in json.loads(pii_set().read_text())]
    texts += [sample.text for sample in generate(300)]
    texts += ["Say hi", "hi", "こんにちは", "Summarise the quarterly sales report."]
    for text in texts:
        assert gated.detect(text) == full.detect(text), text
