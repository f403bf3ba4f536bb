"""The shipped injection classifier: logistic regression over hashed features."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from guardrails.gazetteer import DATA_DIR
from guardrails.injection_features import DIM, featurize
from guardrails.unicode_clean import clean_for_matching

__all__ = ["MODEL_PATH", "InjectionClassifier"]

MODEL_PATH = DATA_DIR / "injection_model.npz"


@dataclass(frozen=True)
class InjectionClassifier:
    weights: npt.NDArray[np.float32]
    bias: float
    # Chosen by `python -m guardrails.injection_train` (held-out business text, <= 1% FPR).
    threshold: float

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> InjectionClassifier:
        with np.load(path) as data:
            weights = data["weights"].astype(np.float32)
            if weights.shape != (DIM,):
                raise ValueError(f"{path}: expected {DIM} weights, got {weights.shape}")
            return cls(weights, float(data["bias"]), float(data["threshold"]))

    def score(self, text: str) -> float:
        """Probability-like score in [0, 1] that `text` is an injection attempt."""
        return self.score_cleaned(clean_for_matching(text))

    def score_cleaned(self, cleaned: str) -> float:
        index, values = featurize(cleaned)
        z = float(np.dot(self.weights[index], values)) + self.bias
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
