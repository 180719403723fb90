"""Fused scaled dot-product attention over 4-D numpy arrays."""

import ctypes
import math

import numpy as np

from ._lib import F32P, check, declare, ptr

# mlak_dtype codes.
DTYPE_F32, DTYPE_F16, DTYPE_BF16 = 0, 1, 2

_I64x4 = ctypes.c_int64 * 4


class AttentionParams(ctypes.Structure):
    _fields_ = [
        ("batch", ctypes.c_int64),
        ("q_heads", ctypes.c_int64),
        ("kv_heads", ctypes.c_int64),
        ("q_len", ctypes.c_int64),
        ("kv_len", ctypes.c_int64),
        ("head_dim", ctypes.c_int64),
        ("v_head_dim", ctypes.c_int64),
        ("q", F32P),
        ("q_strides", _I64x4),
        ("k", ctypes.c_void_p),
        ("k_strides", _I64x4),
        ("v", ctypes.c_void_p),
        ("v_strides", _I64x4),
        ("kv_dtype", ctypes.c_uint32),
        ("o", F32P),
        ("o_strides", _I64x4),
        ("lse", F32P),
        ("scale", ctypes.c_float),
        ("causal", ctypes.c_bool),
        ("position_offset", ctypes.c_int64),
        ("kv_lengths", ctypes.POINTER(ctypes.c_int64)),
        ("bias", F32P),
        ("bias_strides", _I64x4),
        ("alibi_slopes", F32P),
        ("softcap", ctypes.c_float),
        ("window", ctypes.c_int64),
    ]


_attention = declare("mlak_attention", [ctypes.POINTER(AttentionParams)])


def _strides(name, a):
    """Returns the element strides of a 4-D array, checking that each is a
    non-negative multiple of the element size."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.ndim != 4:
        raise ValueError(f"{name} has {a.ndim} dimensions; it must have 4 ([batch, heads, length, dim])")
    item = a.itemsize
    for axis, s in enumerate(a.strides):
        if s < 0 or s % item:
            raise ValueError(f"{name} has stride {s} bytes on axis {axis}; it must be a non-negative multiple "
                             f"of {item}")
    if a.shape[3] > 1 and a.strides[3] != item:
        raise ValueError(f"{name} has element stride {a.strides[3]} bytes; the last axis must be contiguous")
    return _I64x4(*(s // item for s in a.strides))


def _kv_code(k, v, encoding):
    if k.dtype != v.dtype:
        raise TypeError(f"k has dtype {k.dtype} and v {v.dtype}; they must match")
    if encoding is not None and encoding not in ("f16", "bf16"):
        raise ValueError(f"encoding = {encoding!r} is invalid; it must be None, 'f16' or 'bf16'")
    if k.dtype == np.float32 and encoding is None:
        return DTYPE_F32
    if k.dtype == np.float16 and encoding in (None, "f16"):
        return DTYPE_F16
    if k.dtype.name == "bfloat16" and encoding in (None, "bf16"):
        return DTYPE_BF16
    if k.dtype == np.uint16 and encoding is not None:
        return DTYPE_F16 if encoding == "f16" else DTYPE_BF16
    raise TypeError(f"k and v have dtype {k.dtype} with encoding={encoding!r}; they must be float32, float16, "
                    "or uint16 bit patterns with encoding 'f16' or 'bf16'")


def attention(q, k, v, causal=False, scale=None, out=None, return_lse=False, kv_lengths=None, bias=None,
              alibi_slopes=None, softcap=0.0, window=0, position_offset=0, encoding=None):
    """Returns softmax(scale * q @ k^T + masks) @ v per batch and head.

    q is float32 [batch, q_heads, q_len, head_dim]; k and v are
    [batch, kv_heads, kv_len, head_dim or v_head_dim] of one dtype: float32,
    float16, or uint16 bit patterns named by `encoding` ("f16" or "bf16").
    q_heads must be a multiple of kv_heads (grouped-query attention).
    `scale` defaults to 1/sqrt(head_dim). Query i sits at KV position
    kv_len - q_len + i + position_offset, which `causal` and `window`
    masks use. `kv_lengths` (int64, one per batch) shortens each batch's
    keys; `bias` is an additive float32 [batch, q_heads, q_len, kv_len]
    array (broadcast views with zero strides are fine); `alibi_slopes` has
    one float32 slope per query head; `softcap` > 0 caps the scores with
    softcap * tanh(s / softcap). With `return_lse`, returns (out, lse),
    lse being the [batch, q_heads, q_len] natural-log logsumexp of each
    row's scores."""
    qs = _strides("q", q)
    if q.dtype != np.float32:
        raise TypeError(f"q has dtype {q.dtype}; it must be float32")
    ks = _strides("k", k)
    vs = _strides("v", v)
    code = _kv_code(k, v, encoding)
    batch, q_heads, q_len, head_dim = q.shape
    kv_batch, kv_heads, kv_len, k_dim = k.shape
    if kv_batch != batch or k_dim != head_dim:
        raise ValueError(f"k has shape {k.shape}; it must be ({batch}, kv_heads, kv_len, {head_dim}) for q {q.shape}")
    if v.shape[:3] != k.shape[:3]:
        raise ValueError(f"v has shape {v.shape}; its first three axes must match k's {k.shape[:3]}")
    v_head_dim = v.shape[3]
    out_shape = (batch, q_heads, q_len, v_head_dim)
    if out is None:
        out = np.empty(out_shape, dtype=np.float32)
    if out.dtype != np.float32 or out.shape != out_shape:
        raise ValueError(f"out has dtype {out.dtype} and shape {out.shape}; it must be float32 {out_shape}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    os_ = _strides("out", out)
    if scale is None:
        scale = 1.0 / math.sqrt(head_dim) if head_dim > 0 else 1.0

    params = AttentionParams(
        batch=batch, q_heads=q_heads, kv_heads=kv_heads, q_len=q_len, kv_len=kv_len, head_dim=head_dim,
        v_head_dim=v_head_dim, q=ptr(q), q_strides=qs, k=ctypes.c_void_p(k.ctypes.data), k_strides=ks,
        v=ctypes.c_void_p(v.ctypes.data), v_strides=vs, kv_dtype=code, o=ptr(out), o_strides=os_,
        scale=scale, causal=causal, position_offset=position_offset, softcap=softcap, window=window,
    )
    lse = None
    if return_lse:
        lse = np.empty((batch, q_heads, q_len), dtype=np.float32)
        params.lse = ptr(lse)
    if kv_lengths is not None:
        if not isinstance(kv_lengths, np.ndarray) or kv_lengths.dtype != np.int64 or kv_lengths.shape != (batch,):
            raise ValueError(f"kv_lengths must be an int64 numpy array of shape ({batch},)")
        kv_lengths = np.ascontiguousarray(kv_lengths)
        params.kv_lengths = ptr(kv_lengths, ctypes.c_int64)
    if bias is not None:
        if bias.dtype != np.float32:
            raise TypeError(f"bias has dtype {bias.dtype}; it must be float32")
        bias_shape = (batch, q_heads, q_len, kv_len)
        if bias.shape != bias_shape:
            raise ValueError(f"bias has shape {bias.shape}; it must be {bias_shape} (broadcast it with "
                             "numpy.broadcast_to)")
        params.bias = ptr(bias)
        params.bias_strides = _strides("bias", bias)
    if alibi_slopes is not None:
        if not isinstance(alibi_slopes, np.ndarray) or alibi_slopes.dtype != np.float32 \
                or alibi_slopes.shape != (q_heads,):
            raise ValueError(f"alibi_slopes must be a float32 numpy array of shape ({q_heads},)")
        alibi_slopes = np.ascontiguousarray(alibi_slopes)
        params.alibi_slopes = ptr(alibi_slopes)

    check(_attention(ctypes.byref(params)))
    return (out, lse) if return_lse else out
