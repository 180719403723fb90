"""Row-wise sparsemax, entmax-1.5 and alpha-entmax with their backward passes.

Forward functions take float32 or float16 rows, or bfloat16 rows given as
uint16 bit patterns with ``encoding="bf16"`` (an ``ml_dtypes.bfloat16``
array is accepted as is); the output is always float32.
"""

import ctypes

import numpy as np

from ._lib import F32P, I64, as_rows, check, declare, ptr

# mlak_dtype codes.
DTYPE_F32, DTYPE_F16, DTYPE_BF16 = 0, 1, 2

_VOIDP = ctypes.c_void_p
_FORWARD_F32 = [F32P, I64, F32P, I64, I64, I64]
_FORWARD_MIXED = [ctypes.c_uint32, _VOIDP, I64, F32P, I64, I64, I64]
_ALPHA = [F32P, I64]
_BACKWARD = [F32P, I64, F32P, I64, F32P, I64, I64, I64]

_sparsemax_f32 = declare("mlak_sparsemax_f32", _FORWARD_F32)
_entmax15_f32 = declare("mlak_entmax15_f32", _FORWARD_F32)
_alpha_entmax_f32 = declare("mlak_alpha_entmax_f32", _FORWARD_F32 + _ALPHA)
_sparsemax_mixed = declare("mlak_sparsemax", _FORWARD_MIXED)
_entmax15_mixed = declare("mlak_entmax15", _FORWARD_MIXED)
_alpha_entmax_mixed = declare("mlak_alpha_entmax", _FORWARD_MIXED + _ALPHA)
_sparsemax_backward = declare("mlak_sparsemax_backward_f32", _BACKWARD)
_entmax15_backward = declare("mlak_entmax15_backward_f32", _BACKWARD)
_alpha_entmax_backward = declare("mlak_alpha_entmax_backward_f32", _BACKWARD + _ALPHA + [F32P])


def _input_code(x, encoding):
    """Returns (numpy dtype to check x against, mlak_dtype code)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a numpy.ndarray, got {type(x).__name__}")
    if encoding is not None and encoding not in ("f16", "bf16"):
        raise ValueError(f"encoding = {encoding!r} is invalid; it must be None, 'f16' or 'bf16'")
    if x.dtype == np.float32 and encoding is None:
        return np.float32, DTYPE_F32
    if x.dtype == np.float16 and encoding in (None, "f16"):
        return np.float16, DTYPE_F16
    if x.dtype.name == "bfloat16" and encoding in (None, "bf16"):
        return x.dtype, DTYPE_BF16
    if x.dtype == np.uint16 and encoding is not None:
        return np.uint16, DTYPE_F16 if encoding == "f16" else DTYPE_BF16
    if x.dtype == np.uint16:
        raise TypeError("x has dtype uint16; pass encoding='f16' or 'bf16' to name its bit patterns")
    raise TypeError(
        f"x has dtype {x.dtype} with encoding={encoding!r}; it must be float32, float16, "
        "or uint16 bit patterns with encoding 'f16' or 'bf16'"
    )


def _output(out, x, shape):
    if out is None:
        out = np.empty(x.shape, dtype=np.float32)
    y2, ys = as_rows("out", out, writable=True)
    if y2.shape != shape:
        raise ValueError(f"out has shape {out.shape}; it must match x's {x.shape}")
    return out, y2, ys


def _alpha_array(alpha, rows):
    """Returns alpha as a contiguous float32 array of 1 or `rows` values."""
    a = np.ascontiguousarray(np.asarray(alpha, dtype=np.float32).reshape(-1))
    if a.size != 1 and a.size != rows:
        raise ValueError(f"alpha has {a.size} values; it must have 1 or rows = {rows}")
    return a


def _forward(f32_fn, mixed_fn, x, out, encoding, extra=()):
    dtype, code = _input_code(x, encoding)
    x2, xs = as_rows("x", x, dtype=dtype)
    out, y2, ys = _output(out, x, x2.shape)
    rows, n = x2.shape
    if code == DTYPE_F32:
        check(f32_fn(ptr(x2), xs, ptr(y2), ys, rows, n, *extra))
    else:
        check(mixed_fn(code, x2.ctypes.data_as(_VOIDP), xs, ptr(y2), ys, rows, n, *extra))
    return out


def sparsemax(x, out=None, encoding=None):
    """Returns sparsemax over the last axis of a 1-D or 2-D array: the
    Euclidean projection of each row onto the probability simplex. `out`
    (float32, same shape) may be `x` for in-place use on float32 input."""
    return _forward(_sparsemax_f32, _sparsemax_mixed, x, out, encoding)


def entmax15(x, out=None, encoding=None):
    """Returns entmax-1.5 over the last axis; arguments as for `sparsemax`."""
    return _forward(_entmax15_f32, _entmax15_mixed, x, out, encoding)


def alpha_entmax(x, alpha, out=None, encoding=None):
    """Returns alpha-entmax over the last axis. `alpha` is one value for
    every row or a sequence of one value per row, each finite and >= 1
    (1 is softmax, 1.5 entmax-1.5, 2 sparsemax)."""
    dtype, _ = _input_code(x, encoding)
    rows = as_rows("x", x, dtype=dtype)[0].shape[0]
    a = _alpha_array(alpha, rows)
    return _forward(_alpha_entmax_f32, _alpha_entmax_mixed, x, out, encoding, (ptr(a), a.size))


def _backward_args(p, dy, out):
    p2, ps = as_rows("p", p)
    d2, ds = as_rows("dy", dy)
    if d2.shape != p2.shape:
        raise ValueError(f"dy has shape {dy.shape}; it must match p's {p.shape}")
    if out is None:
        out = np.empty(p.shape, dtype=np.float32)
    x2, xs = as_rows("out", out, dtype=np.float32, writable=True)
    if x2.shape != p2.shape:
        raise ValueError(f"out has shape {out.shape}; it must match p's {p.shape}")
    return out, (ptr(p2), ps, ptr(d2), ds, ptr(x2), xs, p2.shape[0], p2.shape[1])


def sparsemax_backward(p, dy, out=None):
    """Returns dx, the gradient through sparsemax, from its forward output
    `p` and the output gradient `dy` (float32, same shape). `out` may be
    `p` or `dy`."""
    out, args = _backward_args(p, dy, out)
    check(_sparsemax_backward(*args))
    return out


def entmax15_backward(p, dy, out=None):
    """Returns dx, the gradient through entmax-1.5; as `sparsemax_backward`."""
    out, args = _backward_args(p, dy, out)
    check(_entmax15_backward(*args))
    return out


def alpha_entmax_backward(p, dy, alpha, out=None):
    """Returns (dx, d_alpha): the gradient through alpha-entmax and the
    per-row gradient with respect to alpha (sum it over rows for an alpha
    shared by all rows). `alpha` must be the forward pass's values."""
    out, args = _backward_args(p, dy, out)
    rows = args[6]
    a = _alpha_array(alpha, rows)
    d_alpha = np.empty(rows, dtype=np.float32)
    check(_alpha_entmax_backward(*args, ptr(a), a.size, ptr(d_alpha)))
    return out, d_alpha
