"""Glue-kernel wrappers against float64 numpy, and their argument checks.

Tolerances are relative to float32 epsilon (1.19e-7); see tests/glue.rs for
the derivations. Here they are looser by a small factor because numpy's
references are coarser (for example erf through math.erf).
"""

import numpy as np
import pytest
from conftest import assert_ran, erf64, rng

import mlak


def np_layernorm(h, g, b, eps):
    h = h.astype(np.float64)
    mu = h.mean(-1, keepdims=True)
    var = ((h - mu) ** 2).mean(-1, keepdims=True)
    return (h - mu) / np.sqrt(var + eps) * g + b


def test_layernorm_matches_numpy(isa):
    r = rng(4)
    x = r.normal(size=(7, 384)).astype(np.float32)
    res = r.normal(size=(7, 384)).astype(np.float32)
    g = r.uniform(0.5, 1.5, 384).astype(np.float32)
    b = r.normal(size=384).astype(np.float32)
    y = mlak.layernorm(x, g, b, 1e-12)
    assert_ran(isa)
    np.testing.assert_allclose(y, np_layernorm(x, g, b, 1e-12), rtol=1e-5, atol=1e-5)
    s = np.empty_like(x)
    y = mlak.layernorm(x, g, b, 1e-5, residual=res, sum_out=s)
    np.testing.assert_allclose(s, x.astype(np.float64) + res, rtol=1e-7)
    np.testing.assert_allclose(y, np_layernorm(x.astype(np.float64) + res, g, b, 1e-5), rtol=1e-5, atol=1e-5)


def test_layernorm_in_place_residual_stream(isa):
    r = rng(5)
    x = r.normal(size=(3, 100)).astype(np.float32)
    stream = r.normal(size=(3, 100)).astype(np.float32)
    want_sum = x.astype(np.float64) + stream
    y = mlak.layernorm(x, residual=stream, sum_out=stream)
    np.testing.assert_allclose(stream, want_sum, rtol=1e-7)
    np.testing.assert_allclose(y, np_layernorm(want_sum, 1.0, 0.0, 1e-5), rtol=1e-5, atol=1e-5)
    x_before = x.copy()
    mlak.layernorm(x, out=x)
    np.testing.assert_allclose(x, np_layernorm(x_before, 1.0, 0.0, 1e-5), rtol=1e-5, atol=1e-5)


def test_rmsnorm_matches_numpy(isa):
    r = rng(6)
    x = r.normal(size=(12, 64)).astype(np.float32)
    g = r.uniform(0.5, 1.5, 64).astype(np.float32)
    y = mlak.rmsnorm(x, g, 1e-6)
    assert_ran(isa)
    x64 = x.astype(np.float64)
    want = x64 / np.sqrt((x64**2).mean(-1, keepdims=True) + 1e-6) * g
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


def test_activations_match_numpy(isa):
    x = np.linspace(-12, 12, 1001, dtype=np.float32).reshape(7, 143)
    x64 = x.astype(np.float64)
    gelu = x64 * 0.5 * (1 + erf64(x64 / np.sqrt(2)))
    np.testing.assert_allclose(mlak.gelu(x), gelu, rtol=1e-5, atol=1e-7)
    assert_ran(isa)
    u = np.sqrt(2 / np.pi) * (x64 + 0.044715 * x64**3)
    np.testing.assert_allclose(mlak.gelu_tanh(x), 0.5 * x64 * (1 + np.tanh(u)), rtol=1e-5, atol=1e-6)
    silu = x64 / (1 + np.exp(-x64))
    np.testing.assert_allclose(mlak.silu(x), silu, rtol=1e-5, atol=1e-7)
    up = np.cos(x)
    np.testing.assert_allclose(mlak.swiglu(x, up), silu * up, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(mlak.erf(x), erf64(x64), atol=1.5e-7)
    np.testing.assert_allclose(mlak.tanh(x), np.tanh(x64), atol=1.2e-7, rtol=3e-7)


def test_swiglu_on_fused_projection(isa):
    fused = rng(7).normal(size=(5, 2 * 48)).astype(np.float32)
    gate, up = fused[:, :48], fused[:, 48:]
    y = mlak.swiglu(gate, up)
    g = gate.astype(np.float64)
    np.testing.assert_allclose(y, g / (1 + np.exp(-g)) * up, rtol=1e-5, atol=1e-7)
    up_copy = up.copy()
    mlak.swiglu(gate.copy(), up_copy, out=up_copy)
    np.testing.assert_array_equal(up_copy, y)


def test_bias_add(isa):
    x = rng(8).normal(size=(6, 31)).astype(np.float32)
    b = rng(9).normal(size=31).astype(np.float32)
    np.testing.assert_array_equal(mlak.bias_add(x, b), x + b)
    assert_ran(isa)
    mlak.bias_add(x, b, out=x)


def test_rope_read_only_input(isa):
    x = np.ones((2, 1, 4), np.float32)
    x.flags.writeable = False
    y = mlak.rope(x)
    assert y.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        mlak.rope(x, out=x)


def np_rope(x, rot, interleaved, base, pos):
    x = x.astype(np.float64)
    out = x.copy()
    half = rot // 2
    inv = base ** (-2.0 * np.arange(half) / rot)
    theta = pos[:, None] * inv[None, :]
    c, s = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
    if interleaved:
        a, b = x[..., 0:rot:2], x[..., 1:rot:2]
        out[..., 0:rot:2] = a * c - b * s
        out[..., 1:rot:2] = b * c + a * s
    else:
        a, b = x[..., :half], x[..., half:rot]
        out[..., :half] = a * c - b * s
        out[..., half:rot] = b * c + a * s
    return out


@pytest.mark.parametrize("layout", ["half", "interleaved"])
def test_rope_matches_numpy(isa, layout):
    x = rng(10).normal(size=(9, 4, 64)).astype(np.float32)
    il = layout == "interleaved"
    y = mlak.rope(x, layout=layout, position_offset=100)
    assert_ran(isa)
    np.testing.assert_allclose(y, np_rope(x, 64, il, 1e4, 100.0 + np.arange(9)), atol=1e-5)
    pos = np.array([5, 0, 3, 3, 8, 1, 2, 7, 4], np.int64)
    y = mlak.rope(x, 32, layout=layout, positions=pos, base=500.0)
    np.testing.assert_allclose(y, np_rope(x, 32, il, 500.0, pos.astype(np.float64)), atol=1e-5)
    z = x.copy()
    mlak.rope(z, 32, layout=layout, positions=pos, base=500.0, out=z)
    np.testing.assert_array_equal(z, y)


F = np.float32
MI = mlak.MlakInvalidArgumentError


@pytest.mark.parametrize(
    "call, exc, text",
    [
        # Checks made in Python before the call.
        (lambda: mlak.layernorm(np.zeros((2, 4))), TypeError, "dtype"),
        (lambda: mlak.layernorm("x"), TypeError, "numpy.ndarray"),
        (lambda: mlak.layernorm(np.zeros((2, 4), F), np.ones(3, F)), ValueError, "gamma"),
        (lambda: mlak.layernorm(np.zeros((2, 4), F), beta=np.ones((4, 1), F)), ValueError, "beta"),
        (lambda: mlak.layernorm(np.zeros((2, 4), F), residual=np.zeros((2, 5), F)), ValueError, "residual"),
        (lambda: mlak.layernorm(np.zeros((2, 4), F), sum_out=np.zeros((2, 4), F)), ValueError, "sum_out"),
        (lambda: mlak.layernorm(np.zeros((2, 8), F)[:, ::2]), ValueError, "contiguous"),
        (lambda: mlak.layernorm(np.zeros((2, 4), F), out=np.zeros((2, 4), np.float64)), TypeError, "dtype"),
        (lambda: mlak.gelu(np.zeros((3, 4), F)[::-1]), ValueError, "row stride"),
        (lambda: mlak.gelu(np.zeros((2, 3, 4), F)), ValueError, "3 dimensions"),
        (lambda: mlak.gelu_tanh(np.zeros(3, np.int32)), TypeError, "dtype"),
        (lambda: mlak.silu(np.zeros(3, F), out=np.zeros(4, F)), ValueError, "must match"),
        (lambda: mlak.swiglu(np.zeros((2, 3), F), np.zeros((2, 4), F)), ValueError, "up"),
        (lambda: mlak.bias_add(np.zeros((2, 3), F), np.zeros(4, F)), ValueError, "bias"),
        (lambda: mlak.bias_add(np.zeros((2, 3), F), None), TypeError, "bias"),
        (lambda: mlak.erf(np.zeros((4, 4), F)[:, ::2]), ValueError, "contiguous"),
        (lambda: mlak.tanh(np.zeros(4, np.float16)), TypeError, "dtype"),
        (lambda: mlak.rope(np.zeros((3, 8), F)), ValueError, "tokens, heads, head_dim"),
        (lambda: mlak.rope(np.zeros((3, 2, 8), F), layout="zigzag"), ValueError, "layout"),
        (lambda: mlak.rope(np.zeros((3, 2, 8), F), positions=np.zeros(2, np.int64)), ValueError, "positions"),
        (lambda: mlak.rope(np.zeros((3, 2, 8), F), positions=np.zeros(3, np.int32)), TypeError, "dtype"),
        (lambda: mlak.rope(np.zeros((3, 8, 2), F).transpose(0, 2, 1)), ValueError, "contiguous"),
        # Checks made by the library, raised with its message.
        (lambda: mlak.layernorm(np.zeros((2, 4), F), eps=-1.0), MI, "eps = -1"),
        (lambda: mlak.layernorm(np.zeros((2, 4), F), eps=float("nan")), MI, "eps = NaN"),
        (lambda: mlak.rmsnorm(np.zeros((2, 4), F), eps=float("inf")), MI, "eps = inf"),
        (lambda: mlak.rope(np.zeros((3, 2, 8), F), 5), MI, "rotary_dim = 5"),
        (lambda: mlak.rope(np.zeros((3, 2, 8), F), 10), MI, "rotary_dim = 10"),
        (lambda: mlak.rope(np.zeros((3, 2, 8), F), base=0.0), MI, "base = 0"),
        (lambda: mlak.rope(np.zeros((3, 2, 8), F), position_offset=-1), MI, "position_offset = -1"),
        (lambda: mlak.rope(np.zeros((3, 2, 8), F), positions=np.array([0, -2, 1], np.int64)), MI, "positions[1] = -2"),
    ],
)
def test_glue_argument_checks(call, exc, text):
    with pytest.raises(exc) as e:
        call()
    assert text in str(e.value)
    if exc is MI:
        assert e.value.status == 2


def test_rejected_call_writes_nothing():
    x = np.ones((2, 4), F)
    out = np.full((2, 4), 7.0, F)
    with pytest.raises(mlak.MlakInvalidArgumentError):
        mlak.layernorm(x, eps=-1.0, out=out)
    np.testing.assert_array_equal(out, 7.0)


def test_output_overlapping_sum_is_rejected():
    x = np.ones((2, 4), F)
    r = np.ones((2, 4), F)
    buf = np.zeros((2, 4), F)
    with pytest.raises(mlak.MlakInvalidArgumentError, match="overlaps"):
        mlak.layernorm(x, residual=r, out=buf, sum_out=buf)
