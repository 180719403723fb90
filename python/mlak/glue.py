"""Transformer glue: LayerNorm, RMSNorm, GELU, SiLU, SwiGLU, bias add,
erf, tanh and rotary position embedding.

Every function works along the last axis of a 1-D or 2-D float32 array
whose last axis is contiguous (RoPE takes ``(tokens, heads, head_dim)``),
and returns a new array unless ``out`` is given. ``out`` may be the input
itself (in place) where the C function allows it.

Errors: TypeError for a non-array or a dtype other than float32;
ValueError for shapes and strides that these wrappers reject before the
call; MlakInvalidArgumentError (also a ValueError) with the library's
message for everything the library rejects.
"""

import ctypes

import numpy as np

from ._lib import I64, addr, as_rows, check, declare, output, require_array, same_shape, vector

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

_P, _F32 = ctypes.c_void_p, ctypes.c_float

#: ``mlak_rope_layout`` values.
ROPE_INTERLEAVED = 0
ROPE_HALF_SPLIT = 1

_layernorm = declare("mlak_layernorm_f32", [_P, I64, _P, I64, _P, _P, _F32, _P, I64, _P, I64, I64, I64])
_rmsnorm = declare("mlak_rmsnorm_f32", [_P, I64, _P, I64, _P, _F32, _P, I64, _P, I64, I64, I64])
_gelu = declare("mlak_gelu_f32", [_P, I64, _P, I64, I64, I64])
_gelu_tanh = declare("mlak_gelu_tanh_f32", [_P, I64, _P, I64, I64, I64])
_silu = declare("mlak_silu_f32", [_P, I64, _P, I64, I64, I64])
_swiglu = declare("mlak_swiglu_f32", [_P, I64, _P, I64, _P, I64, I64, I64])
_bias_add = declare("mlak_bias_add_f32", [_P, I64, _P, _P, I64, I64, I64])
_erf = declare("mlak_erf_f32", [_P, _P, I64])
_tanh = declare("mlak_tanh_f32", [_P, _P, I64])
_rope = declare("mlak_rope_f32", [_P, I64, _P, I64, I64, I64, I64, I64, ctypes.c_uint32, _F32, I64, _P])


def _rows_out(out, x):
    y = output("out", out, x)
    y2, ys = as_rows("out", y, writable=True)
    return y, y2, ys


def _norm(kind, x, gamma, beta, eps, residual, out, sum_out):
    x2, xs = as_rows("x", x)
    rows, n = x2.shape
    r2, rs = None, 0
    if residual is not None:
        r2, rs = as_rows("residual", same_shape("residual", residual, x, "x"))
    gamma = vector("gamma", gamma, n)
    beta = vector("beta", beta, n)
    s2, ss = None, 0
    if sum_out is not None:
        if residual is None:
            raise ValueError("sum_out is set but residual is None; the sum is x + residual")
        s2, ss = as_rows("sum_out", same_shape("sum_out", sum_out, x, "x"), writable=True)
    y, y2, ys = _rows_out(out, x)
    if kind == "layernorm":
        status = _layernorm(
            addr(x2), xs, addr(r2), rs, addr(gamma), addr(beta), eps, addr(y2), ys, addr(s2), ss, rows, n
        )
    else:
        status = _rmsnorm(addr(x2), xs, addr(r2), rs, addr(gamma), eps, addr(y2), ys, addr(s2), ss, rows, n)
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
    x2, xs = as_rows("x", x)
    y, y2, ys = _rows_out(out, x)
    check(fn(addr(x2), xs, addr(y2), ys, x2.shape[0], x2.shape[1]))
    return y


def gelu(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Returns GELU in the erf form, ``x * (1 + erf(x / sqrt(2))) / 2``."""
    return _unary(_gelu, x, out)


def gelu_tanh(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Returns GELU in the tanh form,
    ``x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x**3))) / 2``."""
    return _unary(_gelu_tanh, x, out)


def silu(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Returns SiLU, ``x * sigmoid(x)``."""
    return _unary(_silu, x, out)


def swiglu(gate: np.ndarray, up: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Returns ``silu(gate) * up``. ``gate`` and ``up`` have one shape and
    may be views into one fused projection output; ``out`` may be either."""
    g2, gs = as_rows("gate", gate)
    u2, us = as_rows("up", same_shape("up", up, gate, "gate"))
    y, y2, ys = _rows_out(out, gate)
    check(_swiglu(addr(g2), gs, addr(u2), us, addr(y2), ys, g2.shape[0], g2.shape[1]))
    return y


def bias_add(x: np.ndarray, bias: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Returns ``x + bias`` with ``bias`` 1-D of the last axis' length;
    ``out`` may be ``x``."""
    x2, xs = as_rows("x", x)
    if bias is None:
        raise TypeError("bias must be a numpy.ndarray, got NoneType")
    bias = vector("bias", bias, x2.shape[1])
    y, y2, ys = _rows_out(out, x)
    check(_bias_add(addr(x2), xs, addr(bias), addr(y2), ys, x2.shape[0], x2.shape[1]))
    return y


def _flat(fn, x, out):
    require_array("x", x)
    if x.size > 1 and not x.flags.c_contiguous:
        raise ValueError("x must be C-contiguous; use numpy.ascontiguousarray")
    y = output("out", out, x)
    if y.size > 1 and not y.flags.c_contiguous:
        raise ValueError("out must be C-contiguous")
    if not y.flags.writeable:
        raise ValueError("out is read-only")
    check(fn(addr(x), addr(y), x.size))
    return y


def erf(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Returns ``erf(x)`` element-wise with the kernels' vector erf
    (absolute error at most 1.5e-7). ``x`` must be C-contiguous."""
    return _flat(_erf, x, out)


def tanh(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Returns ``tanh(x)`` element-wise with the kernels' vector tanh
    (absolute error at most 1.2e-7). ``x`` must be C-contiguous."""
    return _flat(_tanh, x, out)


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

    ``x`` has shape ``(tokens, heads, head_dim)``, and the heads of one
    token must be contiguous. The first
    ``rotary_dim`` values of each head (default: all) are rotated in pairs;
    ``layout`` is ``"half"`` (pairs i, i + rotary_dim/2; GPT-NeoX, Llama)
    or ``"interleaved"`` (pairs 2i, 2i + 1; GPT-J). Token t sits at position ``position_offset + t``, or
    ``position_offset + positions[t]`` when ``positions`` (int64, one value
    per token) is given. ``out`` may be ``x``.
    """
    require_array("x", x)
    if x.ndim != 3:
        raise ValueError(f"x has shape {x.shape}; it must be (tokens, heads, head_dim)")
    tokens, heads, head_dim = x.shape
    if heads > 1 and head_dim > 0 and x.strides[1] != head_dim * x.itemsize:
        raise ValueError("the heads of a token must be contiguous in x; use numpy.ascontiguousarray")
    x2, xs = as_rows("x", _token_rows(x))
    if layout == "half":
        code = ROPE_HALF_SPLIT
    elif layout == "interleaved":
        code = ROPE_INTERLEAVED
    else:
        raise ValueError(f"layout = {layout!r} is invalid; use 'half' or 'interleaved'")
    rot = head_dim if rotary_dim is None else int(rotary_dim)
    if positions is not None:
        require_array("positions", positions, np.int64)
        if positions.shape != (tokens,):
            raise ValueError(f"positions has shape {positions.shape}; it must be ({tokens},)")
        positions = np.ascontiguousarray(positions)
    y = output("out", out, x)
    if heads > 1 and head_dim > 0 and y.strides[1] != head_dim * y.itemsize:
        raise ValueError("the heads of a token must be contiguous in out")
    y2, ys = as_rows("out", _token_rows(y), writable=True)
    check(_rope(addr(x2), xs, addr(y2), ys, tokens, heads, head_dim, rot, code, base, position_offset, addr(positions)))
    return y


def _token_rows(a):
    """Views a (tokens, heads, head_dim) array with contiguous heads as
    (tokens, heads * head_dim) rows, keeping the token stride."""
    tokens, heads, head_dim = a.shape
    if a.size == 0:
        return np.zeros((tokens, heads * head_dim), dtype=a.dtype)
    shape, strides = (tokens, heads * head_dim), (a.strides[0], a.itemsize)
    return np.lib.stride_tricks.as_strided(a, shape, strides, writeable=a.flags.writeable)
