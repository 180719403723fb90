"""Row-wise softmax, log-softmax, confidence estimators and early exit."""

import ctypes

import numpy as np

from ._lib import F32P, I64, as_rows, check, declare, ptr


class Confidence(ctypes.Structure):
    _fields_ = [
        ("entropy", ctypes.c_float),
        ("max_prob", ctypes.c_float),
        ("margin", ctypes.c_float),
        ("logit_variance", ctypes.c_float),
    ]


class ExitThresholds(ctypes.Structure):
    _fields_ = [
        ("max_entropy", ctypes.c_float),
        ("min_max_prob", ctypes.c_float),
        ("min_margin", ctypes.c_float),
    ]


_ROW_MAP = [F32P, I64, F32P, I64, I64, I64, ctypes.c_float]
_softmax = declare("mlak_softmax_f32", _ROW_MAP)
_log_softmax = declare("mlak_log_softmax_f32", _ROW_MAP)
_confidence = declare("mlak_confidence_f32", [F32P, I64, I64, I64, ctypes.c_float, ctypes.POINTER(Confidence)])
_early_exit = declare(
    "mlak_early_exit_f32",
    [F32P, I64, I64, I64, ctypes.c_float, ctypes.POINTER(ExitThresholds),
     ctypes.POINTER(ctypes.c_bool), ctypes.POINTER(Confidence), ctypes.POINTER(ctypes.c_int64)],
)

CONFIDENCE_DTYPE = np.dtype(
    [("entropy", np.float32), ("max_prob", np.float32), ("margin", np.float32), ("logit_variance", np.float32)]
)


def _map(fn, x, out, temperature):
    x2, xs = as_rows("x", x)
    if out is None:
        out = np.empty(x.shape, dtype=np.float32)
    y2, ys = as_rows("out", out, writable=True)
    if y2.shape != x2.shape:
        raise ValueError(f"out has shape {out.shape}; it must match x's {x.shape}")
    check(fn(ptr(x2), xs, ptr(y2), ys, x2.shape[0], x2.shape[1], temperature))
    return out


def softmax(x, out=None, temperature=1.0):
    """Returns softmax(x / temperature) over the last axis of a 1-D or 2-D
    float32 array; `out` may be `x` for in-place use."""
    return _map(_softmax, x, out, temperature)


def log_softmax(x, out=None, temperature=1.0):
    """Returns log_softmax(x / temperature) over the last axis."""
    return _map(_log_softmax, x, out, temperature)


def confidence(logits, temperature=1.0):
    """Returns a structured array with fields entropy, max_prob, margin and
    logit_variance, one entry per row."""
    x2, xs = as_rows("logits", logits)
    out = np.zeros(x2.shape[0], dtype=CONFIDENCE_DTYPE)
    check(_confidence(ptr(x2), xs, x2.shape[0], x2.shape[1], temperature,
                      out.ctypes.data_as(ctypes.POINTER(Confidence))))
    return out


def early_exit(logits, max_entropy=np.inf, min_max_prob=0.0, min_margin=0.0, temperature=1.0):
    """Returns (exit, stats): a bool array that is True for rows confident
    enough to stop, and the per-row statistics of `confidence`."""
    x2, xs = as_rows("logits", logits)
    rows = x2.shape[0]
    exit_ = np.zeros(rows, dtype=np.bool_)
    stats = np.zeros(rows, dtype=CONFIDENCE_DTYPE)
    t = ExitThresholds(max_entropy, min_max_prob, min_margin)
    count = ctypes.c_int64(-1)
    check(_early_exit(ptr(x2), xs, rows, x2.shape[1], temperature, ctypes.byref(t),
                      exit_.ctypes.data_as(ctypes.POINTER(ctypes.c_bool)),
                      stats.ctypes.data_as(ctypes.POINTER(Confidence)), ctypes.byref(count)))
    return exit_, stats
