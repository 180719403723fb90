"""Softmax family through the Python package: results against float64 numpy
under every available level, and every argument check."""

import numpy as np
import pytest

import mlak


def reference_softmax(x, t=1.0):
    z = x.astype(np.float64) / t
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture(params=mlak.ISAS)
def level(request):
    name = request.param
    if not mlak.isa_supported(name):
        pytest.skip(f"{name} not supported by this CPU")
    mlak.set_isa(name)
    yield name
    mlak.set_isa(mlak.ISAS[max(i for i, n in enumerate(mlak.ISAS) if mlak.isa_supported(n))])


@pytest.mark.parametrize("n", [0, 1, 7, 16, 17, 64, 65, 1000])
def test_softmax_matches_numpy(level, n):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(5, n)).astype(np.float32) * 4
    y = mlak.softmax(x, temperature=1.5)
    assert mlak.last_dispatched_isa() == level
    if n == 0:
        assert y.shape == (5, 0)
        return
    np.testing.assert_allclose(y, reference_softmax(x, 1.5), rtol=1e-5, atol=1e-7)
    lp = mlak.log_softmax(x)
    np.testing.assert_allclose(lp, np.log(reference_softmax(x)), rtol=1e-5, atol=1e-5)


def test_softmax_strided_view_and_in_place(level):
    x = np.random.default_rng(1).normal(size=(6, 50)).astype(np.float32)
    view = x[::2, :33]
    y = mlak.softmax(view)
    np.testing.assert_allclose(y, reference_softmax(view), rtol=1e-5, atol=1e-7)
    z = x.copy()
    mlak.softmax(z, out=z)
    np.testing.assert_allclose(z, reference_softmax(x), rtol=1e-5, atol=1e-7)


def test_confidence_and_early_exit(level):
    x = np.array([[10.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]], dtype=np.float32)
    c = mlak.confidence(x)
    p = reference_softmax(x)
    np.testing.assert_allclose(c["max_prob"], p.max(axis=1), rtol=1e-6)
    np.testing.assert_allclose(c["entropy"][1], np.log(4), rtol=1e-6)
    exit_, stats = mlak.early_exit(x, max_entropy=0.5)
    assert exit_.tolist() == [True, False]
    assert stats["margin"][1] == 0.0


def test_nonfinite_policy(level):
    x = np.array([[-np.inf] * 5, [0.0, np.nan, 1.0, 2.0, 3.0], [1e30, -1e30, 0.0, 1e30, 5.0]], dtype=np.float32)
    y = mlak.softmax(x)
    assert (y[0] == 0).all()
    assert np.isnan(y[1]).all()
    np.testing.assert_allclose(y[2], [0.5, 0, 0, 0.5, 0], atol=1e-7)


def test_argument_errors():
    x = np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(TypeError, match="dtype float64"):
        mlak.softmax(x.astype(np.float64))
    with pytest.raises(ValueError, match="last axis must be contiguous"):
        mlak.softmax(np.zeros((3, 4), dtype=np.float32)[:, ::2])
    with pytest.raises(ValueError, match="3 dimensions"):
        mlak.softmax(np.zeros((2, 2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="must match"):
        mlak.softmax(x, out=np.zeros((3, 2), dtype=np.float32))
    with pytest.raises(mlak.MlakInvalidArgumentError, match="temperature = 0"):
        mlak.softmax(x, temperature=0.0)
    with pytest.raises(mlak.MlakInvalidArgumentError, match="max_entropy = NaN"):
        mlak.early_exit(x, max_entropy=np.nan)
    with pytest.raises(mlak.MlakUnsupportedIsaError, match="sse9"):
        mlak.set_isa("sse9")
    with pytest.raises(TypeError):
        mlak.softmax([1.0, 2.0])
