"""ctypes bindings for mlak, SIMD CPU kernels for transformer building blocks.

The shared library is found through the MLAK_LIBRARY environment variable,
else in the repository's target/release or target/debug, else by the system
loader. Failed calls raise a subclass of MlakError carrying the library's
message; argument errors also derive from ValueError.
"""

import ctypes

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
from .softmax import confidence, early_exit, log_softmax, softmax

ISAS = ("scalar", "avx2", "avx512", "neon")

lib.mlak_isa_name.restype = ctypes.c_char_p
lib.mlak_isa_supported.argtypes = [ctypes.c_uint32]
lib.mlak_isa_supported.restype = ctypes.c_bool
lib.mlak_set_isa_by_name.argtypes = [ctypes.c_char_p]
lib.mlak_last_dispatched_isa.restype = ctypes.c_int32


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


def set_num_threads(n):
    """Sets the thread count for large calls; 0 restores the default."""
    if n < 0:
        raise ValueError(f"n = {n} is negative; it must be >= 0")
    lib.mlak_set_num_threads(ctypes.c_size_t(n))


__all__ = [
    "MlakAllocationError", "MlakError", "MlakInternalError", "MlakInvalidArgumentError",
    "MlakNullPointerError", "MlakUnsupportedIsaError", "confidence", "early_exit", "isa",
    "isa_supported", "last_dispatched_isa", "log_softmax", "set_isa", "set_num_threads",
    "softmax", "version",
]
