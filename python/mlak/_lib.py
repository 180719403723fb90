"""Loading of libmlak, status handling and numpy argument checks.

The library is searched in this order: the path in ``MLAK_LIBRARY``; the
repository's ``target/release`` and then ``target/debug``; the system
loader (``ctypes.util.find_library("mlak")``, then the bare file name,
which honours ``LD_LIBRARY_PATH``).
"""

import ctypes
import ctypes.util
import os
from pathlib import Path

import numpy as np

_REPO = Path(__file__).resolve().parents[2]


class MlakError(Exception):
    """A mlak call failed. `status` is the numeric status, `message` the
    library's description: the argument, its value and the rule it broke."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


class MlakNullPointerError(MlakError, ValueError):
    """MLAK_STATUS_NULL_POINTER: a required array was missing."""


class MlakInvalidArgumentError(MlakError, ValueError):
    """MLAK_STATUS_INVALID_ARGUMENT: a shape, stride or value broke a rule."""


class MlakUnsupportedIsaError(MlakError, RuntimeError):
    """MLAK_STATUS_UNSUPPORTED_ISA: the requested instruction set is unknown
    or this CPU lacks it."""


class MlakAllocationError(MlakError, MemoryError):
    """MLAK_STATUS_ALLOCATION_FAILED."""


class MlakInternalError(MlakError, RuntimeError):
    """MLAK_STATUS_INTERNAL: a bug inside mlak."""


_ERRORS = {
    1: MlakNullPointerError,
    2: MlakInvalidArgumentError,
    3: MlakUnsupportedIsaError,
    4: MlakAllocationError,
    5: MlakInternalError,
}


def _candidates():
    env = os.environ.get("MLAK_LIBRARY")
    if env:
        yield env
        return
    for profile in ("release", "debug"):
        yield str(_REPO / "target" / profile / "libmlak.so")
    found = ctypes.util.find_library("mlak")
    if found:
        yield found
    yield "libmlak.so"


def _load():
    errors = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            errors.append(f"{path}: not found")
            continue
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            errors.append(f"{path}: {e}")
    raise OSError(
        "libmlak.so could not be loaded; build it with `cargo build --release` "
        "or set MLAK_LIBRARY to its path. Tried: " + "; ".join(errors)
    )


lib = _load()
lib.mlak_last_error.restype = ctypes.c_char_p
lib.mlak_status_string.restype = ctypes.c_char_p
lib.mlak_version.restype = ctypes.c_char_p


def check(status):
    """Raises the exception that matches a nonzero status."""
    if status != 0:
        message = lib.mlak_last_error().decode("utf-8", "replace")
        raise _ERRORS.get(status, MlakError)(status, message)


def declare(name, argtypes, restype=ctypes.c_int):
    """Sets the ctypes signature of an export and returns it."""
    fn = getattr(lib, name)
    fn.argtypes = argtypes
    fn.restype = restype
    return fn


def has(name):
    """Returns whether the loaded library exports the C function `name`, so
    that a family module can wrap an export only where the build has it."""
    return hasattr(lib, name)


F32P = ctypes.POINTER(ctypes.c_float)
I64 = ctypes.c_int64


def as_rows(name, a, dtype=np.float32, writable=False):
    """Checks that `a` is a 1-D or 2-D array of `dtype` whose last axis is
    contiguous, and returns (array as 2-D, row stride in elements)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name} has dtype {a.dtype}; it must be {np.dtype(dtype)}")
    if a.ndim == 1:
        a = a.reshape(1, -1)
    if a.ndim != 2:
        raise ValueError(f"{name} has {a.ndim} dimensions; it must have 1 or 2")
    item = a.itemsize
    if a.shape[1] > 1 and a.strides[1] != item:
        raise ValueError(f"{name} has element stride {a.strides[1]} bytes; the last axis must be contiguous")
    if a.shape[0] > 1 and a.shape[1] > 0 and (a.strides[0] <= 0 or a.strides[0] % item):
        raise ValueError(f"{name} has row stride {a.strides[0]} bytes; it must be a positive multiple of {item}")
    if writable and not a.flags.writeable:
        raise ValueError(f"{name} is read-only")
    stride = a.strides[0] // item if a.shape[0] > 1 and a.shape[1] > 0 else a.shape[1]
    return a, stride


def ptr(a, ctype=ctypes.c_float):
    return a.ctypes.data_as(ctypes.POINTER(ctype))


def addr(a):
    """Returns the data address of `a` as a void pointer, or None for None."""
    return None if a is None else ctypes.c_void_p(a.ctypes.data)


def require_array(name, a, dtype=np.float32):
    """Checks that `a` is a numpy array of `dtype`; raises TypeError."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name} has dtype {a.dtype}; it must be {np.dtype(dtype)}")
    return a


def output(name, out, like):
    """Returns `out` after checking its type and shape against the array
    `like`, or a new float32 array of that shape."""
    if out is None:
        return np.empty(like.shape, dtype=np.float32)
    require_array(name, out)
    if out.shape != like.shape:
        raise ValueError(f"{name} has shape {out.shape}; it must match {like.shape}")
    return out


def same_shape(name, a, like, like_name):
    """Checks that `a` is a float32 array with the shape of `like`."""
    require_array(name, a)
    if a.shape != like.shape:
        raise ValueError(f"{name} has shape {a.shape}; it must match {like_name}'s {like.shape}")
    return a


def vector(name, v, n):
    """Checks an optional contiguous 1-D float32 array of `n` values."""
    if v is None:
        return None
    require_array(name, v)
    if v.shape != (n,):
        raise ValueError(f"{name} has shape {v.shape}; it must be ({n},)")
    if n > 1 and v.strides[0] != v.itemsize:
        raise ValueError(f"{name} must be contiguous; use numpy.ascontiguousarray")
    return v
