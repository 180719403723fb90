"""Fused attention through the Python package against a float64 numpy
reference, and the argument checks."""

import numpy as np
import pytest

import mlak
from mlak import attention


def reference(q, k, v, causal=False, scale=None):
    """Returns softmax(scale q k^T) v in float64, with grouped KV heads."""
    q, k, v = (a.astype(np.float64) for a in (q, k, v))
    group = q.shape[1] // k.shape[1]
    k = np.repeat(k, group, axis=1)
    v = np.repeat(v, group, axis=1)
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = scale * q @ k.swapaxes(-1, -2)
    lq, lk = s.shape[-2:]
    if causal:
        pos = lk - lq + np.arange(lq)[:, None]
        s = np.where(np.arange(lk)[None, :] > pos, -np.inf, s)
    m = s.max(-1, keepdims=True)
    p = np.exp(s - m)
    lse = (np.log(p.sum(-1)) + m[..., 0])
    return p / p.sum(-1, keepdims=True) @ v, lse


# Tolerance: f32 dot products over D <= 64 and an online softmax; outputs
# are convex combinations of unit-scale V rows, so 2e-5 absolute. f16 K/V
# are compared with the reference on the same f16 values.
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("q_len,kv_len", [(1, 1), (1, 37), (5, 5), (17, 40), (64, 64)])
@pytest.mark.parametrize("kv_dtype", [np.float32, np.float16])
def test_matches_numpy(causal, q_len, kv_len, kv_dtype):
    rng = np.random.default_rng(q_len * 100 + kv_len)
    q = rng.normal(size=(2, 4, q_len, 24)).astype(np.float32)
    k = rng.normal(size=(2, 2, kv_len, 24)).astype(kv_dtype)
    v = rng.normal(size=(2, 2, kv_len, 16)).astype(kv_dtype)
    out, lse = attention.attention(q, k, v, causal=causal, return_lse=True)
    want, want_lse = reference(q, k, v, causal=causal)
    np.testing.assert_allclose(out, want, atol=2e-5)
    np.testing.assert_allclose(lse, want_lse, atol=2e-5)


def test_strided_views_and_bf16_bits():
    rng = np.random.default_rng(9)
    big = rng.normal(size=(1, 8, 30, 64)).astype(np.float32)
    q = big[:, ::2, :, :32]
    k = big[:, :2, :, 32:]
    v = big[:, 2:4, :, :16]
    np.testing.assert_allclose(attention.attention(q, k, v), reference(q, k, v)[0], atol=2e-5)
    kb = (np.ascontiguousarray(k).view(np.uint32) >> 16).astype(np.uint16)
    vb = (np.ascontiguousarray(v).view(np.uint32) >> 16).astype(np.uint16)
    kw = (kb.astype(np.uint32) << 16).view(np.float32)
    vw = (vb.astype(np.uint32) << 16).view(np.float32)
    np.testing.assert_allclose(attention.attention(q, kb, vb, encoding="bf16"), reference(q, kw, vw)[0], atol=2e-5)


def test_rejects_bad_arguments():
    q = np.zeros((1, 4, 3, 8), np.float32)
    k = np.zeros((1, 2, 5, 8), np.float32)
    with pytest.raises(ValueError, match="q has 3 dimensions"):
        attention.attention(q[0], k, k)
    with pytest.raises(TypeError, match="q has dtype"):
        attention.attention(q.astype(np.float64), k, k)
    with pytest.raises(TypeError, match="must match"):
        attention.attention(q, k, k.astype(np.float16))
    with pytest.raises(TypeError, match="encoding"):
        attention.attention(q, k.view(np.uint16), k.view(np.uint16))
    with pytest.raises(ValueError, match="last axis must be contiguous"):
        attention.attention(q, np.zeros((1, 2, 5, 16), np.float32)[..., ::2], k)
    with pytest.raises(ValueError, match="k has shape"):
        attention.attention(q, np.zeros((1, 2, 5, 7), np.float32), k)
    with pytest.raises(ValueError, match="out has dtype"):
        attention.attention(q, k, k, out=np.zeros((1, 4, 3, 7), np.float32))
    with pytest.raises(ValueError, match="kv_lengths"):
        attention.attention(q, k, k, kv_lengths=np.array([1, 2]))
    with pytest.raises(mlak.MlakInvalidArgumentError):
        attention.attention(q, np.zeros((1, 3, 5, 8), np.float32), np.zeros((1, 3, 5, 8), np.float32))
    with pytest.raises(mlak.MlakInvalidArgumentError):
        attention.attention(q, k, k, kv_lengths=np.array([6], dtype=np.int64))
    with pytest.raises(mlak.MlakInvalidArgumentError):
        attention.attention(q, k, k, softcap=-1.0)
