"""Fused attention through ``mlak_attention``:
O = softmax(scale·Q·Kᵀ + modifiers)·V per batch and query head.

Tensors are 4-D numpy arrays ``[batch, heads, length, dim]`` with any
non-negative element strides and a contiguous last axis, so per-head views
into a fused QKV projection need no copy.
"""

import ctypes

import numpy as np

from ._lib import check, declare, has, require_array

__all__ = ["attention"]

_P = ctypes.c_void_p
_I64x4 = ctypes.c_int64 * 4

# mlak_dtype codes of the K/V element types.
_DTYPES = {"f32": 0, "f16": 1, "bf16": 2}


class _Params(ctypes.Structure):
    """Layout of ``mlak_attention_params`` in include/mlak.h."""

    _fields_ = [
        ("batch", ctypes.c_int64),
        ("q_heads", ctypes.c_int64),
        ("kv_heads", ctypes.c_int64),
        ("q_len", ctypes.c_int64),
        ("kv_len", ctypes.c_int64),
        ("head_dim", ctypes.c_int64),
        ("v_head_dim", ctypes.c_int64),
        ("q", _P),
        ("q_strides", _I64x4),
        ("k", _P),
        ("k_strides", _I64x4),
        ("v", _P),
        ("v_strides", _I64x4),
        ("kv_dtype", ctypes.c_uint32),
        ("o", _P),
        ("o_strides", _I64x4),
        ("lse", _P),
        ("scale", ctypes.c_float),
        ("causal", ctypes.c_bool),
        ("position_offset", ctypes.c_int64),
        ("kv_lengths", _P),
        ("bias", _P),
        ("bias_strides", _I64x4),
        ("alibi_slopes", _P),
        ("softcap", ctypes.c_float),
        ("window", ctypes.c_int64),
    ]


_attention = declare("mlak_attention", [ctypes.POINTER(_Params)]) if has("mlak_attention") else None


def _tensor(name, a, dtypes=(np.float32,)):
    # Decode on a short cache takes a few hundred microseconds, so this
    # check runs on every call without generators.
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype not in dtypes:
        raise TypeError(f"{name} has dtype {a.dtype}; it must be one of {', '.join(str(np.dtype(d)) for d in dtypes)}")
    if a.ndim != 4:
        raise ValueError(f"{name} has {a.ndim} dimensions; it must have 4: [batch, heads, length, dim]")
    item = a.itemsize
    s0, s1, s2, s3 = a.strides
    # The item sizes accepted (2 and 4) are powers of two, so a stride that
    # is not a multiple leaves a low bit set in the OR of the strides.
    if min(s0, s1, s2, s3) < 0 or (s0 | s1 | s2 | s3) % item:
        bad = next(s for s in (s0, s1, s2, s3) if s < 0 or s % item)
        raise ValueError(
            f"{name} has stride {bad} bytes; strides must be non-negative multiples of {item}; "
            f"pass np.ascontiguousarray({name})"
        )
    return _I64x4(s0 // item, s1 // item, s2 // item, s3 // item)


def attention(
    q,
    k,
    v,
    out=None,
    *,
    scale=None,
    causal=False,
    kv_lengths=None,
    position_offset=0,
    bias=None,
    alibi_slopes=None,
    softcap=0.0,
    window=0,
    kv_dtype=None,
    return_lse=False,
):
    """Returns fused attention of ``q`` ``[batch, q_heads, q_len, head_dim]``
    over ``k`` ``[batch, kv_heads, kv_len, head_dim]`` and ``v``
    ``[batch, kv_heads, kv_len, v_head_dim]``, shape
    ``[batch, q_heads, q_len, v_head_dim]`` (written into ``out`` when given),
    and with ``return_lse`` also each row's logsumexp.

    ``scale`` defaults to 1/sqrt(head_dim). ``kv_lengths`` (int64, one per
    batch) masks keys at or past each length, which is how padding is
    masked. K and V are float32, float16, or uint16 bit patterns with
    ``kv_dtype="bf16"``. Raises NotImplementedError when the loaded library
    has no ``mlak_attention``; the library's rejections raise
    MlakInvalidArgumentError with its message.
    """
    if _attention is None:
        raise NotImplementedError("the loaded mlak library does not export mlak_attention; rebuild it")
    qs = _tensor("q", q)
    ks = _tensor("k", k, (np.float32, np.float16, np.uint16))
    vs = _tensor("v", v, (np.float32, np.float16, np.uint16))
    if k.dtype != v.dtype:
        raise TypeError(f"k has dtype {k.dtype} but v has {v.dtype}; they must match")
    if kv_dtype is None:
        if k.dtype == np.uint16:
            raise TypeError('k and v are uint16; pass kv_dtype="bf16" to read them as bfloat16')
        kv_dtype = "f32" if k.dtype == np.float32 else "f16"
    if kv_dtype not in _DTYPES:
        raise ValueError(f"kv_dtype = {kv_dtype!r} is invalid; use 'f32', 'f16' or 'bf16'")
    batch, q_heads, q_len, head_dim = q.shape
    _, kv_heads, kv_len, _ = k.shape
    v_head_dim = v.shape[3]
    if k.shape[0] != batch or k.shape[3] != head_dim:
        raise ValueError(f"k has shape {k.shape}; batch and head_dim must match q's {q.shape}")
    if v.shape[:3] != k.shape[:3]:
        raise ValueError(f"v has shape {v.shape}; its first three axes must match k's {k.shape}")
    o_shape = (batch, q_heads, q_len, v_head_dim)
    if out is None:
        out = np.empty(o_shape, dtype=np.float32)
    os_ = _tensor("out", out)
    if out.shape != o_shape:
        raise ValueError(f"out has shape {out.shape}; it must be {o_shape}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    lse = np.empty((batch, q_heads, q_len), dtype=np.float32) if return_lse else None
    if kv_lengths is not None:
        require_array("kv_lengths", kv_lengths, np.int64)
        if kv_lengths.shape != (batch,):
            raise ValueError(f"kv_lengths has shape {kv_lengths.shape}; it must be ({batch},)")
        kv_lengths = np.ascontiguousarray(kv_lengths)
    bs = _I64x4(0, 0, 0, 0)
    if bias is not None:
        bs = _tensor("bias", bias)
        if bias.shape != (batch, q_heads, q_len, kv_len):
            raise ValueError(f"bias has shape {bias.shape}; it must be {(batch, q_heads, q_len, kv_len)}")
    if alibi_slopes is not None:
        require_array("alibi_slopes", alibi_slopes)
        if alibi_slopes.shape != (q_heads,):
            raise ValueError(f"alibi_slopes has shape {alibi_slopes.shape}; it must be ({q_heads},)")
        alibi_slopes = np.ascontiguousarray(alibi_slopes)

    def addr(a):
        return None if a is None else a.ctypes.data

    p = _Params(
        batch, q_heads, kv_heads, q_len, kv_len, head_dim, v_head_dim,
        addr(q), qs, addr(k), ks, addr(v), vs, _DTYPES[kv_dtype], addr(out), os_, addr(lse),
        float(1.0 / np.sqrt(head_dim)) if scale is None else float(scale), bool(causal), int(position_offset),
        addr(kv_lengths), addr(bias), bs, addr(alibi_slopes), float(softcap), int(window),
    )
    check(_attention(ctypes.byref(p)))
    return (out, lse) if return_lse else out
