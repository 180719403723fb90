"""ctypes bindings for mlak, SIMD CPU kernels for transformer building blocks.

The shared library is found through the MLAK_LIBRARY environment variable,
else in the repository's target/release or target/debug, else by the system
loader. Failed calls raise a subclass of MlakError carrying the library's
message; argument errors also derive from ValueError.

Each kernel family is a small module: :mod:`mlak.softmax`, :mod:`mlak.gemm`,
:mod:`mlak.attention`, :mod:`mlak.entmax`, :mod:`mlak.moe` and
:mod:`mlak.glue` (norms, activations, RoPE). Checks done in
Python before a call raise TypeError (not an array, wrong dtype) or
ValueError (shape, stride, read-only output); the library's own rejections
raise MlakInvalidArgumentError, which is also a ValueError.
"""

import ctypes
import numbers

from ._lib import (
    MlakAllocationError,
    MlakError,
    MlakInternalError,
    MlakInvalidArgumentError,
    MlakNullPointerError,
    MlakUnsupportedIsaError,
    check,
    lib,
)
from . import entmax, moe
from .attention import attention
from .entmax import alpha_entmax, alpha_entmax_backward, entmax15, entmax15_backward, sparsemax, sparsemax_backward
from .gemm import sgemm
from .glue import bias_add, erf, gelu, gelu_tanh, layernorm, rmsnorm, rope, silu, swiglu, tanh
from .moe import MoeLayer
from .softmax import confidence, early_exit, log_softmax, softmax

ISAS = ("scalar", "avx2", "avx512", "neon")

lib.mlak_isa_name.restype = ctypes.c_char_p
lib.mlak_isa_supported.argtypes = [ctypes.c_uint32]
lib.mlak_isa_supported.restype = ctypes.c_bool
lib.mlak_set_isa_by_name.argtypes = [ctypes.c_char_p]
lib.mlak_last_dispatched_isa.restype = ctypes.c_int32
lib.mlak_best_isa.restype = ctypes.c_int
lib.mlak_cpu_features.restype = ctypes.c_uint64
lib.mlak_get_num_threads.argtypes = [ctypes.POINTER(ctypes.c_size_t)]


def lib_has(name):
    """Returns whether the loaded library exports the C function `name`."""
    return hasattr(lib, name)


def version():
    """Returns the library version string."""
    return lib.mlak_version().decode()


def isa():
    """Returns the name of the active instruction-set level."""
    value = ctypes.c_int()
    check(lib.mlak_get_isa(ctypes.byref(value)))
    return ISAS[value.value]


def set_isa(name):
    """Caps dispatch at the named level for the whole process."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    check(lib.mlak_set_isa_by_name(name.encode()))


def isa_supported(name):
    """Returns whether this CPU runs the named level."""
    return name in ISAS and bool(lib.mlak_isa_supported(ISAS.index(name)))


def last_dispatched_isa():
    """Returns the level the most recent kernel call on this thread ran, or
    None before the first call."""
    value = lib.mlak_last_dispatched_isa()
    return None if value < 0 else ISAS[value]


def best_isa():
    """Returns the name of the best level this CPU runs."""
    return ISAS[lib.mlak_best_isa()]


def cpu_features():
    """Returns the detected CPU feature bits (MLAK_CPU_* in mlak.h)."""
    return int(lib.mlak_cpu_features())


def num_threads():
    """Returns the thread count used for large calls."""
    value = ctypes.c_size_t()
    check(lib.mlak_get_num_threads(ctypes.byref(value)))
    return value.value


def set_num_threads(n):
    """Sets the thread count for large calls; 0 restores the default."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n = {n!r} is a {type(n).__name__}; it must be an integer")
    n = int(n)
    if n < 0:
        raise ValueError(f"n = {n} is negative; it must be >= 0")
    # ctypes would wrap a larger value modulo 2**64 without an error.
    if n >= 2**64:
        raise ValueError(f"n = {n} does not fit in size_t; it must be below 2**64")
    lib.mlak_set_num_threads(ctypes.c_size_t(n))


__all__ = [
    "MlakAllocationError", "MlakError", "MlakInternalError", "MlakInvalidArgumentError",
    "MlakNullPointerError", "MlakUnsupportedIsaError", "MoeLayer", "alpha_entmax", "alpha_entmax_backward",
    "attention", "best_isa", "bias_add", "confidence", "entmax", "entmax15", "entmax15_backward", "moe",
    "cpu_features", "early_exit", "erf", "gelu", "gelu_tanh", "isa", "isa_supported", "lib_has",
    "last_dispatched_isa", "layernorm", "log_softmax", "num_threads", "rmsnorm", "rope",
    "set_isa", "set_num_threads", "sgemm", "silu", "softmax", "sparsemax", "sparsemax_backward", "swiglu",
    "tanh", "version",
]
