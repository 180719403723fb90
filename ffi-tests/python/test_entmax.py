"""Sparse normalizers through the Python package: forward and backward
results against float64 numpy references, and every argument check."""

import numpy as np
import pytest

import mlak
from mlak import entmax


def reference_alpha_entmax(x, alpha):
    """Returns alpha-entmax of each row of x by bisection on tau in float64."""
    z = (alpha - 1.0) * x.astype(np.float64)
    hi = z.max(axis=-1, keepdims=True)
    lo = hi - 1.0
    power = 1.0 / (alpha - 1.0)
    for _ in range(200):
        tau = (lo + hi) / 2
        total = (np.maximum(z - tau, 0.0) ** power).sum(axis=-1, keepdims=True)
        lo = np.where(total >= 1.0, tau, lo)
        hi = np.where(total >= 1.0, hi, tau)
    p = np.maximum(z - (lo + hi) / 2, 0.0) ** power
    return p / p.sum(axis=-1, keepdims=True)


def reference_backward(p, dy, alpha):
    p = p.astype(np.float64)
    g = np.where(p > 0, p ** (2.0 - alpha), 0.0)
    gd = g * dy
    return gd - gd.sum(-1, keepdims=True) / g.sum(-1, keepdims=True) * g


@pytest.fixture(params=mlak.ISAS)
def level(request):
    name = request.param
    if not mlak.isa_supported(name):
        pytest.skip(f"{name} not supported by this CPU")
    mlak.set_isa(name)
    yield name
    mlak.set_isa(mlak.ISAS[max(i for i, n in enumerate(mlak.ISAS) if mlak.isa_supported(n))])


# Tolerance: the kernels find tau exactly (sparsemax, entmax-1.5) or to
# 1e-6 relative row sum (Newton), so an f32 result is within a few ulps of
# the float64 reference plus that sum error; 2e-5 absolute covers both.
@pytest.mark.parametrize("n", [1, 2, 7, 16, 17, 100, 1000])
@pytest.mark.parametrize("name,alpha", [("sparsemax", 2.0), ("entmax15", 1.5), ("alpha_entmax", 1.3)])
def test_forward_matches_numpy(level, n, name, alpha):
    x = np.random.default_rng(n).normal(scale=2.0, size=(5, n)).astype(np.float32)
    if name == "alpha_entmax":
        y = entmax.alpha_entmax(x, alpha)
    else:
        y = getattr(entmax, name)(x)
    assert mlak.last_dispatched_isa() == level
    np.testing.assert_allclose(y, reference_alpha_entmax(x, alpha), atol=2e-5)


def test_per_row_alpha():
    x = np.random.default_rng(3).normal(size=(3, 40)).astype(np.float32)
    alphas = np.array([1.2, 1.5, 2.5], dtype=np.float32)
    y = entmax.alpha_entmax(x, alphas)
    for r, a in enumerate(alphas):
        np.testing.assert_allclose(y[r], reference_alpha_entmax(x[r:r + 1], float(a))[0], atol=2e-5)


def test_half_inputs_match_widened_f32():
    x = np.random.default_rng(4).normal(size=(4, 33)).astype(np.float32)
    h = x.astype(np.float16)
    np.testing.assert_array_equal(entmax.sparsemax(h), entmax.sparsemax(h.astype(np.float32)))
    np.testing.assert_array_equal(entmax.entmax15(h.view(np.uint16), encoding="f16"),
                                  entmax.entmax15(h.astype(np.float32)))
    bits = (x.view(np.uint32) >> 16).astype(np.uint16)
    widened = (bits.astype(np.uint32) << 16).view(np.float32)
    np.testing.assert_array_equal(entmax.alpha_entmax(bits, 1.3, encoding="bf16"),
                                  entmax.alpha_entmax(widened, 1.3))


def test_strided_view_and_in_place():
    x = np.random.default_rng(5).normal(size=(6, 50)).astype(np.float32)
    view = x[::2, :33]
    np.testing.assert_allclose(entmax.sparsemax(view), reference_alpha_entmax(view, 2.0), atol=2e-5)
    z = x.copy()
    entmax.entmax15(z, out=z)
    np.testing.assert_allclose(z, reference_alpha_entmax(x, 1.5), atol=2e-5)


# Tolerance: the backward pass is a few f32 multiply-adds per entry on
# values of order 1; 1e-5 absolute.
@pytest.mark.parametrize("name,alpha", [("sparsemax", 2.0), ("entmax15", 1.5), ("alpha_entmax", 1.3)])
def test_backward_matches_numpy(level, name, alpha):
    rng = np.random.default_rng(6)
    x = rng.normal(scale=2.0, size=(4, 37)).astype(np.float32)
    dy = rng.normal(size=x.shape).astype(np.float32)
    if name == "alpha_entmax":
        p = entmax.alpha_entmax(x, alpha)
        dx, d_alpha = entmax.alpha_entmax_backward(p, dy, alpha)
        assert d_alpha.shape == (4,)
        assert np.all(np.isfinite(d_alpha))
    else:
        p = getattr(entmax, name)(x)
        dx = getattr(entmax, name + "_backward")(p, dy)
    np.testing.assert_allclose(dx, reference_backward(p, dy, alpha), atol=1e-5)


def test_alpha_gradient_matches_finite_difference():
    rng = np.random.default_rng(7)
    x = rng.normal(scale=2.0, size=(2, 20)).astype(np.float32)
    dy = rng.normal(size=x.shape).astype(np.float32)
    alpha, h = 1.4, 1e-4
    p = entmax.alpha_entmax(x, alpha)
    _, d_alpha = entmax.alpha_entmax_backward(p, dy, alpha)
    numeric = ((reference_alpha_entmax(x, alpha + h) - reference_alpha_entmax(x, alpha - h)) / (2 * h) * dy).sum(-1)
    np.testing.assert_allclose(d_alpha, numeric, rtol=1e-3, atol=1e-4)


def test_rejects_bad_arguments():
    x = np.zeros((2, 4), dtype=np.float32)
    with pytest.raises(TypeError, match="x must be a numpy.ndarray"):
        entmax.sparsemax([[1.0, 2.0]])
    with pytest.raises(TypeError, match="float64"):
        entmax.sparsemax(x.astype(np.float64))
    with pytest.raises(TypeError, match="encoding"):
        entmax.sparsemax(x.view(np.uint16))
    with pytest.raises(ValueError, match="encoding"):
        entmax.sparsemax(x.astype(np.float16), encoding="f8")
    with pytest.raises(ValueError, match="3 dimensions"):
        entmax.sparsemax(np.zeros((2, 2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="last axis must be contiguous"):
        entmax.entmax15(np.zeros((4, 4), dtype=np.float32)[:, ::2])
    with pytest.raises(ValueError, match="must match"):
        entmax.sparsemax(x, out=np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(TypeError, match="out has dtype"):
        entmax.sparsemax(x, out=np.zeros((2, 4), dtype=np.float64))
    with pytest.raises(TypeError, match="out has dtype float16"):
        h = x.astype(np.float16)
        entmax.sparsemax(h, out=h)
    with pytest.raises(ValueError, match="alpha has 3 values"):
        entmax.alpha_entmax(x, [1.5, 1.5, 1.5])
    with pytest.raises(mlak.MlakInvalidArgumentError, match="alpha"):
        entmax.alpha_entmax(x, 0.5)
    with pytest.raises(mlak.MlakInvalidArgumentError):
        entmax.alpha_entmax(x, float("nan"))
    with pytest.raises(ValueError, match="dy has shape"):
        entmax.sparsemax_backward(x, np.zeros((3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="alpha has 3 values"):
        entmax.alpha_entmax_backward(x, x, [1.5, 1.5, 1.5])
