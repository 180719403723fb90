"""Softmax-family wrappers against numpy."""

import numpy as np
import pytest
from conftest import assert_ran, rng

import mlak


def np_softmax(x, t=1.0):
    z = x.astype(np.float64) / t
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def test_softmax_matches_numpy(isa):
    x = rng(1).normal(size=(5, 37)).astype(np.float32) * 4
    y = mlak.softmax(x, temperature=0.7)
    assert_ran(isa)
    np.testing.assert_allclose(y, np_softmax(x, 0.7), rtol=2e-6, atol=1e-9)
    ly = mlak.log_softmax(x)
    np.testing.assert_allclose(ly, np.log(np_softmax(x)), rtol=2e-6, atol=2e-6)


def test_softmax_strided_and_in_place(isa):
    base = rng(2).normal(size=(4, 50)).astype(np.float32)
    x = base[:, :33]  # row stride 50, n 33
    y = mlak.softmax(x)
    np.testing.assert_allclose(y, np_softmax(x), rtol=2e-6)
    z = base.copy()
    mlak.softmax(z, out=z)
    np.testing.assert_allclose(z, np_softmax(base), rtol=2e-6)


def test_confidence_and_early_exit(isa):
    x = rng(3).normal(size=(6, 20)).astype(np.float32) * 3
    c = mlak.confidence(x)
    p = np_softmax(x)
    np.testing.assert_allclose(c["max_prob"], p.max(axis=-1), rtol=1e-5)
    np.testing.assert_allclose(c["entropy"], -(p * np.log(p)).sum(axis=-1), rtol=1e-4, atol=1e-6)
    exit_, stats = mlak.early_exit(x, min_max_prob=0.5)
    assert_ran(isa)
    np.testing.assert_array_equal(exit_, p.max(axis=-1) >= 0.5)
    np.testing.assert_allclose(stats["max_prob"], c["max_prob"])


@pytest.mark.parametrize(
    "call, exc",
    [
        (lambda: mlak.softmax([1.0, 2.0]), TypeError),
        (lambda: mlak.softmax(np.zeros(4, np.float64)), TypeError),
        (lambda: mlak.softmax(np.zeros((3, 4), np.float32)[:, ::2]), mlak.InvalidArgumentError),
        (lambda: mlak.softmax(np.zeros((3, 4), np.float32)[::-1]), mlak.InvalidArgumentError),
        (lambda: mlak.softmax(np.zeros((3, 4), np.float32), out=np.zeros((3, 5), np.float32)), mlak.InvalidArgumentError),
        (lambda: mlak.softmax(np.zeros((3, 4), np.float32), temperature=-1.0), mlak.InvalidArgumentError),
        (lambda: mlak.early_exit(np.zeros((3, 4), np.float32), max_entropy=float("nan")), mlak.InvalidArgumentError),
    ],
)
def test_softmax_argument_checks(call, exc):
    with pytest.raises(exc):
        call()


def test_softmax_rejects_partial_overlap():
    buf = np.zeros(40, np.float32)
    x = buf[:32].reshape(4, 8)
    y = buf[4:36].reshape(4, 8)
    with pytest.raises(mlak.InvalidArgumentError, match="overlaps"):
        mlak.softmax(x, out=y)


def test_read_only_output_is_rejected():
    x = np.zeros((2, 3), np.float32)
    out = np.zeros((2, 3), np.float32)
    out.flags.writeable = False
    with pytest.raises(mlak.InvalidArgumentError, match="read-only"):
        mlak.softmax(x, out=out)
