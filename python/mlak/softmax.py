"""Row-wise softmax, log-softmax, confidence estimators and early exit."""

from __future__ import annotations

import ctypes

import numpy as np

from . import _lib
from ._lib import as_rows, check, lib, output, ptr, require_array

__all__ = ["softmax", "log_softmax", "confidence", "early_exit", "CONFIDENCE_DTYPE"]

_P, _I64, _F32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float

#: numpy layout of ``mlak_confidence``: one record per row.
CONFIDENCE_DTYPE = np.dtype(
    [("entropy", np.float32), ("max_prob", np.float32), ("margin", np.float32), ("logit_variance", np.float32)]
)


class _Thresholds(ctypes.Structure):
    _fields_ = [("max_entropy", ctypes.c_float), ("min_max_prob", ctypes.c_float), ("min_margin", ctypes.c_float)]


for _name in ("mlak_softmax_f32", "mlak_log_softmax_f32"):
    _lib.declare(_name, [_P, _I64, _P, _I64, _I64, _I64, _F32])
_lib.declare("mlak_confidence_f32", [_P, _I64, _I64, _I64, _F32, _P])
_lib.declare(
    "mlak_early_exit_f32",
    [_P, _I64, _I64, _I64, _F32, ctypes.POINTER(_Thresholds), _P, _P, ctypes.POINTER(_I64)],
)


def _map(fn, x, temperature, out):
    require_array("x", x)
    rows, n, xs = as_rows("x", x)
    y = output("out", out, x.shape)
    _, _, ys = as_rows("out", y)
    check(fn(ptr(x), xs, ptr(y), ys, rows, n, float(temperature)))
    return y


def softmax(x: np.ndarray, temperature: float = 1.0, out: np.ndarray | None = None) -> np.ndarray:
    """Returns ``softmax(x / temperature)`` along the last axis.

    ``out`` (same shape, float32) receives the result when given and may be
    ``x`` itself. Raises TypeError for a non-float32 array and
    InvalidArgumentError for bad shapes, strides or temperatures.
    """
    return _map(lib.mlak_softmax_f32, x, temperature, out)


def log_softmax(x: np.ndarray, temperature: float = 1.0, out: np.ndarray | None = None) -> np.ndarray:
    """Returns ``log_softmax(x / temperature)`` along the last axis; as
    :func:`softmax`."""
    return _map(lib.mlak_log_softmax_f32, x, temperature, out)


def confidence(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Returns the confidence statistics of each row of ``logits`` as a
    record array of :data:`CONFIDENCE_DTYPE` with the leading shape of
    ``logits``."""
    require_array("logits", logits)
    rows, n, stride = as_rows("logits", logits)
    out = np.zeros(logits.shape[:-1], dtype=CONFIDENCE_DTYPE)
    check(lib.mlak_confidence_f32(ptr(logits), stride, rows, n, float(temperature), ptr(out)))
    return out


def early_exit(
    logits: np.ndarray,
    max_entropy: float = float("inf"),
    min_max_prob: float = 0.0,
    min_margin: float = 0.0,
    temperature: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Decides per row whether the model is confident enough to stop.

    Returns ``(exit, stats)``: a bool array with the leading shape of
    ``logits`` and the per-row statistics as in :func:`confidence`.
    """
    require_array("logits", logits)
    rows, n, stride = as_rows("logits", logits)
    exit_ = np.zeros(logits.shape[:-1], dtype=np.bool_)
    stats = np.zeros(logits.shape[:-1], dtype=CONFIDENCE_DTYPE)
    t = _Thresholds(max_entropy, min_max_prob, min_margin)
    count = _I64(0)
    check(
        lib.mlak_early_exit_f32(
            ptr(logits), stride, rows, n, float(temperature), ctypes.byref(t), ptr(exit_), ptr(stats), ctypes.byref(count)
        )
    )
    return exit_, stats
