"""sgemm wrapper against numpy; skipped when the library lacks mlak_sgemm."""

import numpy as np
import pytest
from conftest import assert_ran, rng

import mlak

if not hasattr(mlak.lib, "mlak_sgemm"):
    pytest.skip("the loaded library does not export mlak_sgemm", allow_module_level=True)


@pytest.mark.parametrize("m, n, k", [(1, 1, 1), (7, 13, 5), (33, 65, 129), (64, 384, 384)])
def test_sgemm_matches_numpy(isa, m, n, k):
    r = rng(m * n + k)
    a = r.normal(size=(m, k)).astype(np.float32)
    b = r.normal(size=(k, n)).astype(np.float32)
    c = mlak.sgemm(a, b)
    assert_ran(isa)
    want = a.astype(np.float64) @ b
    # Each entry is a k-term dot product in f32.
    np.testing.assert_allclose(c, want, atol=4e-7 * k * np.abs(a).max() * np.abs(b).max())


def test_sgemm_transposed_views_alpha_beta(isa):
    r = rng(1)
    w = r.normal(size=(40, 24)).astype(np.float32)  # (out, in), as torch stores it
    x = r.normal(size=(9, 24)).astype(np.float32)
    c = r.normal(size=(9, 40)).astype(np.float32)
    want = 0.5 * (x.astype(np.float64) @ w.T) + 2.0 * c
    got = mlak.sgemm(x, w.T, out=c.copy(), alpha=0.5, beta=2.0)
    np.testing.assert_allclose(got, want, atol=1e-4)
    nan = np.full((9, 40), np.nan, np.float32)
    got = mlak.sgemm(x, w.T, out=nan)
    assert np.isfinite(got).all(), "beta = 0 must not read out"


@pytest.mark.parametrize(
    "call, exc, text",
    [
        (lambda: mlak.sgemm(np.zeros((2, 3)), np.zeros((3, 2), np.float32)), TypeError, "dtype"),
        (lambda: mlak.sgemm(np.zeros(3, np.float32), np.zeros((3, 2), np.float32)), ValueError, "dimensions"),
        (lambda: mlak.sgemm(np.zeros((2, 3), np.float32), np.zeros((4, 2), np.float32)), ValueError, "first axis"),
        (lambda: mlak.sgemm(np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32), out=np.zeros((2, 3), np.float32)), ValueError, "shape"),
        (lambda: mlak.sgemm(np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32), beta=1.0), ValueError, "beta"),
    ],
)
def test_sgemm_argument_checks(call, exc, text):
    with pytest.raises(exc) as e:
        call()
    assert text in str(e.value)
