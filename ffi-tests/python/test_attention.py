"""Fused attention wrapper against numpy; skipped when the library lacks
mlak_attention."""

import numpy as np
import pytest
from conftest import assert_ran, rng

import mlak

if not mlak.lib_has("mlak_attention"):
    pytest.skip("the loaded library does not export mlak_attention", allow_module_level=True)


def np_attention(q, k, v, lengths, scale, causal=False):
    q, k, v = (t.astype(np.float64) for t in (q, k, v))
    s = scale * q @ k.transpose(0, 1, 3, 2)
    kv_len = k.shape[2]
    mask = np.arange(kv_len)[None, :] >= lengths[:, None]
    s = np.where(mask[:, None, None, :], -np.inf, s)
    if causal:
        q_len = q.shape[2]
        pos = lengths[:, None] - q_len + np.arange(q_len)[None, :]
        future = np.arange(kv_len)[None, None, :] > pos[:, :, None]
        s = np.where(future[:, None], -np.inf, s)
    s = s - s.max(-1, keepdims=True)
    p = np.exp(s)
    return (p / p.sum(-1, keepdims=True)) @ v


def test_attention_matches_numpy_with_key_lengths(isa):
    r = rng(2)
    q = r.normal(size=(3, 4, 9, 32)).astype(np.float32)
    k = r.normal(size=(3, 4, 9, 32)).astype(np.float32)
    v = r.normal(size=(3, 4, 9, 32)).astype(np.float32)
    lengths = np.array([9, 4, 1], np.int64)
    out = mlak.attention(q, k, v, kv_lengths=lengths)
    assert_ran(isa)
    np.testing.assert_allclose(out, np_attention(q, k, v, lengths, 32**-0.5), atol=2e-6)


def test_attention_on_fused_qkv_views(isa):
    r = rng(3)
    batch, tokens, heads, dim = 2, 7, 3, 16
    qkv = r.normal(size=(batch * tokens, 3 * heads * dim)).astype(np.float32)
    view = qkv.reshape(batch, tokens, 3, heads, dim).transpose(2, 0, 3, 1, 4)
    q, k, v = view[0], view[1], view[2]
    out = np.zeros((batch, heads, tokens, dim), np.float32)
    mlak.attention(q, k, v, out=out, scale=0.3, causal=True)
    lengths = np.full(batch, tokens, np.int64)
    np.testing.assert_allclose(out, np_attention(q, k, v, lengths, 0.3, causal=True), atol=2e-6)


@pytest.mark.parametrize(
    "call, exc, text",
    [
        (lambda: mlak.attention(np.zeros((1, 1, 2, 4)), np.zeros((1, 1, 2, 4), np.float32), np.zeros((1, 1, 2, 4), np.float32)), TypeError, "dtype"),
        (lambda: mlak.attention(np.zeros((1, 2, 4), np.float32), np.zeros((1, 1, 2, 4), np.float32), np.zeros((1, 1, 2, 4), np.float32)), ValueError, "4"),
        (lambda: mlak.attention(np.zeros((1, 1, 2, 4), np.float32), np.zeros((1, 1, 2, 5), np.float32), np.zeros((1, 1, 2, 4), np.float32)), ValueError, "head_dim"),
        (lambda: mlak.attention(np.zeros((1, 1, 2, 4), np.float32), np.zeros((1, 1, 2, 4), np.float32), np.zeros((1, 1, 3, 4), np.float32)), ValueError, "v has shape"),
        (lambda: mlak.attention(np.zeros((1, 1, 2, 4), np.float32), np.zeros((1, 1, 2, 4), np.float32), np.zeros((1, 1, 2, 4), np.float32), kv_lengths=np.array([3], np.int64)), mlak.MlakInvalidArgumentError, "kv_lengths"),
        (lambda: mlak.attention(np.zeros((1, 1, 2, 4), np.float32), np.zeros((1, 1, 2, 4), np.float32), np.zeros((1, 1, 2, 4), np.float32), scale=float("nan")), mlak.MlakInvalidArgumentError, "scale"),
        (lambda: mlak.attention(np.zeros((1, 1, 2, 4), np.float32), np.zeros((1, 1, 2, 4), np.float16), np.zeros((1, 1, 2, 4), np.float32)), TypeError, "must match"),
    ],
)
def test_attention_argument_checks(call, exc, text):
    with pytest.raises(exc) as e:
        call()
    assert text in str(e.value)


def test_attention_rejects_bad_strides():
    z = np.zeros((1, 2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="k has stride -16 bytes; strides must be non-negative multiples of 4"):
        mlak.attention(z, z[:, :, ::-1], z)
    # 6-byte steps over float32 elements cannot be expressed in elements.
    odd = np.lib.stride_tricks.as_strided(np.zeros(64, np.float32), shape=(1, 2, 3, 4), strides=(96, 48, 6, 4))
    with pytest.raises(ValueError, match="v has stride 6 bytes"):
        mlak.attention(z, z, odd)
    # A positive row stride of two f16 rows is accepted and reads the same
    # keys as a contiguous copy.
    kv = rng(5).normal(size=(1, 2, 6, 4)).astype(np.float16)
    q = rng(6).normal(size=(1, 2, 3, 4)).astype(np.float32)
    got = mlak.attention(q, kv[:, :, ::2], kv[:, :, ::2])
    want = mlak.attention(q, np.ascontiguousarray(kv[:, :, ::2]), np.ascontiguousarray(kv[:, :, ::2]))
    np.testing.assert_array_equal(got, want)
