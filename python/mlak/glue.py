"""Transformer glue: LayerNorm, RMSNorm, GELU, SiLU, SwiGLU, bias add,
erf, tanh and rotary position embedding.

Every function works along the last axis of a float32 array whose last
axis is contiguous, and returns a new array unless ``out`` is given.
``out`` may be the input itself (in place) where the C function allows it.
Errors: TypeError for a non-array or a dtype other than float32;
InvalidArgumentError (a ValueError) for shapes, strides and values that the
library or these wrappers reject, with the library's message.
"""

from __future__ import annotations

import ctypes

import numpy as np

from . import _lib
from ._lib import InvalidArgumentError, as_rows, check, lib, output, ptr, require_array, require_shape, vector

__all__ = [
    "layernorm",
    "rmsnorm",
    "gelu",
    "gelu_tanh",
    "silu",
    "swiglu",
    "bias_add",
    "erf",
    "tanh",
    "rope",
    "ROPE_INTERLEAVED",
    "ROPE_HALF_SPLIT",
]

_P, _I64, _F32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float

#: ``mlak_rope_layout`` values.
ROPE_INTERLEAVED = 0
ROPE_HALF_SPLIT = 1

_lib.declare("mlak_layernorm_f32", [_P, _I64, _P, _I64, _P, _P, _F32, _P, _I64, _P, _I64, _I64, _I64])
_lib.declare("mlak_rmsnorm_f32", [_P, _I64, _P, _I64, _P, _F32, _P, _I64, _P, _I64, _I64, _I64])
for _name in ("mlak_gelu_f32", "mlak_gelu_tanh_f32", "mlak_silu_f32"):
    _lib.declare(_name, [_P, _I64, _P, _I64, _I64, _I64])
_lib.declare("mlak_swiglu_f32", [_P, _I64, _P, _I64, _P, _I64, _I64, _I64])
_lib.declare("mlak_bias_add_f32", [_P, _I64, _P, _P, _I64, _I64, _I64])
_lib.declare("mlak_erf_f32", [_P, _P, _I64])
_lib.declare("mlak_tanh_f32", [_P, _P, _I64])
_lib.declare("mlak_rope_f32", [_P, _I64, _P, _I64, _I64, _I64, _I64, _I64, ctypes.c_uint32, _F32, _I64, _P])


def _same_shape_input(name: str, a, shape) -> tuple[int, int, int]:
    require_array(name, a)
    require_shape(name, a, shape)
    return as_rows(name, a)


def _norm(kind, x, gamma, beta, eps, residual, out, sum_out):
    require_array("x", x)
    rows, n, xs = as_rows("x", x)
    rs = ss = 0
    if residual is not None:
        _, _, rs = _same_shape_input("residual", residual, x.shape)
    gamma = vector("gamma", gamma, n)
    beta = vector("beta", beta, n)
    if sum_out is not None:
        if residual is None:
            raise InvalidArgumentError("sum_out is set but residual is None; the sum is x + residual")
        output("sum_out", sum_out, x.shape)
        _, _, ss = as_rows("sum_out", sum_out)
    y = output("out", out, x.shape)
    _, _, ys = as_rows("out", y)
    if kind == "layernorm":
        status = lib.mlak_layernorm_f32(
            ptr(x), xs, ptr(residual), rs, ptr(gamma), ptr(beta), float(eps), ptr(y), ys, ptr(sum_out), ss, rows, n
        )
    else:
        status = lib.mlak_rmsnorm_f32(
            ptr(x), xs, ptr(residual), rs, ptr(gamma), float(eps), ptr(y), ys, ptr(sum_out), ss, rows, n
        )
    check(status)
    return y


def layernorm(
    x: np.ndarray,
    gamma: np.ndarray | None = None,
    beta: np.ndarray | None = None,
    eps: float = 1e-5,
    *,
    residual: np.ndarray | None = None,
    out: np.ndarray | None = None,
    sum_out: np.ndarray | None = None,
) -> np.ndarray:
    """Returns LayerNorm of ``h = x + residual`` (or ``h = x``) along the
    last axis: ``(h - mean) / sqrt(var + eps) * gamma + beta``.

    ``gamma`` and ``beta`` are 1-D of the last axis' length (None: 1 and 0).
    ``sum_out``, which needs ``residual``, receives h. ``out`` and
    ``sum_out`` may be ``x`` or ``residual`` (in place) but not each other.
    """
    return _norm("layernorm", x, gamma, beta, eps, residual, out, sum_out)


def rmsnorm(
    x: np.ndarray,
    gamma: np.ndarray | None = None,
    eps: float = 1e-6,
    *,
    residual: np.ndarray | None = None,
    out: np.ndarray | None = None,
    sum_out: np.ndarray | None = None,
) -> np.ndarray:
    """Returns RMSNorm of ``h = x + residual`` (or ``h = x``):
    ``h / sqrt(mean(h**2) + eps) * gamma``; arguments as for
    :func:`layernorm`."""
    return _norm("rmsnorm", x, gamma, None, eps, residual, out, sum_out)


def _unary(fn, x, out):
    require_array("x", x)
    rows, n, xs = as_rows("x", x)
    y = output("out", out, x.shape)
    _, _, ys = as_rows("out", y)
    check(fn(ptr(x), xs, ptr(y), ys, rows, n))
    return y


def gelu(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Returns GELU in the erf form, ``x * (1 + erf(x / sqrt(2))) / 2``."""
    return _unary(lib.mlak_gelu_f32, x, out)


def gelu_tanh(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Returns GELU in the tanh form,
    ``x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x**3))) / 2``."""
    return _unary(lib.mlak_gelu_tanh_f32, x, out)


def silu(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Returns SiLU, ``x * sigmoid(x)``."""
    return _unary(lib.mlak_silu_f32, x, out)


def swiglu(gate: np.ndarray, up: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Returns ``silu(gate) * up``. ``gate`` and ``up`` have one shape and
    may be views into one fused projection output; ``out`` may be either."""
    require_array("gate", gate)
    rows, n, gs = as_rows("gate", gate)
    _, _, us = _same_shape_input("up", up, gate.shape)
    y = output("out", out, gate.shape)
    _, _, ys = as_rows("out", y)
    check(lib.mlak_swiglu_f32(ptr(gate), gs, ptr(up), us, ptr(y), ys, rows, n))
    return y


def bias_add(x: np.ndarray, bias: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Returns ``x + bias`` with ``bias`` 1-D of the last axis' length;
    ``out`` may be ``x``."""
    require_array("x", x)
    rows, n, xs = as_rows("x", x)
    require_array("bias", bias)
    bias = vector("bias", bias, n)
    y = output("out", out, x.shape)
    _, _, ys = as_rows("out", y)
    check(lib.mlak_bias_add_f32(ptr(x), xs, ptr(bias), ptr(y), ys, rows, n))
    return y


def _flat(fn, x, out):
    require_array("x", x)
    if x.size > 1 and not x.flags.c_contiguous:
        raise InvalidArgumentError("x must be C-contiguous; use numpy.ascontiguousarray")
    y = output("out", out, x.shape)
    if y.size > 1 and not y.flags.c_contiguous:
        raise InvalidArgumentError("out must be C-contiguous")
    check(fn(ptr(x), ptr(y), x.size))
    return y


def erf(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Returns ``erf(x)`` element-wise with the kernels' vector erf
    (absolute error at most 1.3e-7). ``x`` must be C-contiguous."""
    return _flat(lib.mlak_erf_f32, x, out)


def tanh(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Returns ``tanh(x)`` element-wise with the kernels' vector tanh
    (absolute error at most 1.2e-7). ``x`` must be C-contiguous."""
    return _flat(lib.mlak_tanh_f32, x, out)


def rope(
    x: np.ndarray,
    rotary_dim: int | None = None,
    *,
    layout: str = "half",
    base: float = 10000.0,
    position_offset: int = 0,
    positions: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Returns ``x`` with rotary position embedding applied.

    ``x`` has shape ``(..., tokens, heads, head_dim)``: axis -3 counts
    tokens, and the heads of one token must be contiguous. The first
    ``rotary_dim`` values of each head (default: all) are rotated in pairs;
    ``layout`` is ``"half"`` (pairs i, i + rotary_dim/2; GPT-NeoX, Llama)
    or ``"interleaved"`` (pairs 2i, 2i + 1; GPT-J). Token t of the flattened
    leading axes sits at position ``position_offset + t``, or
    ``position_offset + positions[t]`` when ``positions`` (int64, one value
    per token) is given.
    """
    require_array("x", x)
    if x.ndim < 3:
        raise InvalidArgumentError(f"x has shape {tuple(x.shape)}; it must be (..., tokens, heads, head_dim)")
    heads, head_dim = x.shape[-2], x.shape[-1]
    if heads > 1 and x.strides[-2] != head_dim * x.itemsize:
        raise InvalidArgumentError("the heads of a token must be contiguous in x; use numpy.ascontiguousarray")
    flat = x.reshape(x.shape[:-2] + (heads * head_dim,)) if x.size else x.reshape(x.shape[:-2] + (0,))
    if flat.size and not np.may_share_memory(flat, x):
        raise InvalidArgumentError("x cannot be viewed as rows of tokens without a copy; use numpy.ascontiguousarray")
    rows, n, xs = as_rows("x", flat)
    if layout == "half":
        code = ROPE_HALF_SPLIT
    elif layout == "interleaved":
        code = ROPE_INTERLEAVED
    else:
        raise InvalidArgumentError(f"layout = {layout!r} is invalid; use 'half' or 'interleaved'")
    rot = head_dim if rotary_dim is None else int(rotary_dim)
    if positions is not None:
        require_array("positions", positions, np.int64)
        if positions.ndim != 1 or positions.shape[0] != rows:
            raise InvalidArgumentError(f"positions has shape {tuple(positions.shape)} but must have shape ({rows},)")
        positions = np.ascontiguousarray(positions)
    y = output("out", out, x.shape)
    yflat = y.reshape(flat.shape)
    if yflat.size and not np.may_share_memory(yflat, y):
        raise InvalidArgumentError("out cannot be viewed as rows of tokens without a copy")
    _, _, ys = as_rows("out", yflat)
    check(
        lib.mlak_rope_f32(
            ptr(flat), xs, ptr(yflat), ys, rows, heads, head_dim, rot, code, float(base), int(position_offset), ptr(positions)
        )
    )
    return y
