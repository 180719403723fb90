"""General matrix multiply through ``mlak_sgemm``: C = alpha·A·B + beta·C.

Matrices are 2-D float32 numpy arrays with any element strides, so a
transposed operand is just a transposed view (``w.T``): no copy is made.
"""

import ctypes

import numpy as np

from ._lib import I64, addr, check, declare, has, require_array

__all__ = ["sgemm"]

if has("mlak_sgemm"):
    _sgemm = declare(
        "mlak_sgemm",
        [I64, I64, I64, ctypes.c_float, ctypes.c_void_p, I64, I64, ctypes.c_void_p, I64, I64,
         ctypes.c_float, ctypes.c_void_p, I64, I64],
    )
else:
    _sgemm = None


def _strides(name, a):
    require_array(name, a)
    if a.ndim != 2:
        raise ValueError(f"{name} has {a.ndim} dimensions; it must have 2")
    item = a.itemsize
    for s in a.strides:
        if s % item:
            raise ValueError(f"{name} has stride {s} bytes; strides must be multiples of {item} bytes")
    return a.strides[0] // item, a.strides[1] // item


def sgemm(a, b, out=None, alpha=1.0, beta=0.0):
    """Returns ``alpha * a @ b + beta * out`` for float32 ``a`` (m×k) and
    ``b`` (k×n), written into ``out`` (m×n) when given.

    ``beta = 0`` never reads ``out``, so it may hold NaN. Raises
    NotImplementedError when the loaded library has no ``mlak_sgemm``.
    """
    if _sgemm is None:
        raise NotImplementedError("the loaded mlak library does not export mlak_sgemm; rebuild it")
    rs_a, cs_a = _strides("a", a)
    rs_b, cs_b = _strides("b", b)
    m, k = a.shape
    if b.shape[0] != k:
        raise ValueError(f"b has shape {b.shape}; its first axis must match a's second, {k}")
    n = b.shape[1]
    if out is None:
        if beta != 0.0:
            raise ValueError(f"beta = {beta} reads out, so out must be given")
        out = np.empty((m, n), dtype=np.float32)
    rs_c, cs_c = _strides("out", out)
    if out.shape != (m, n):
        raise ValueError(f"out has shape {out.shape}; it must be {(m, n)}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    check(_sgemm(m, n, k, alpha, addr(a), rs_a, cs_a, addr(b), rs_b, cs_b, beta, addr(out), rs_c, cs_c))
    return out
