"""Loading of the mlak shared library, error mapping and array checks.

The library is searched in this order:

1. the path in the ``MLAK_LIBRARY`` environment variable;
2. ``target/release`` and then ``target/debug`` of the repository that
   contains this package (``cargo build --release`` puts it there);
3. the system loader (``ctypes.util.find_library("mlak")``, then the bare
   file name, which honours ``LD_LIBRARY_PATH``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from pathlib import Path

import numpy as np

__all__ = [
    "MlakError",
    "NullPointerError",
    "InvalidArgumentError",
    "UnsupportedIsaError",
    "AllocationError",
    "InternalError",
    "lib",
    "library_path",
]

# Status codes of mlak_status (include/mlak.h).
STATUS_OK = 0
STATUS_NULL_POINTER = 1
STATUS_INVALID_ARGUMENT = 2
STATUS_UNSUPPORTED_ISA = 3
STATUS_ALLOCATION_FAILED = 4
STATUS_INTERNAL = 5


class MlakError(Exception):
    """Base class of every error raised by the mlak package.

    ``status`` is the library's ``mlak_status`` code and ``message`` its
    ``mlak_last_error`` text (or, for checks done in Python before the call,
    a message in the same style).
    """

    status = STATUS_INTERNAL

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class NullPointerError(MlakError, ValueError):
    """A required buffer was missing (``MLAK_STATUS_NULL_POINTER``)."""

    status = STATUS_NULL_POINTER


class InvalidArgumentError(MlakError, ValueError):
    """An argument broke a documented rule: shape, stride, overlap or value
    (``MLAK_STATUS_INVALID_ARGUMENT``)."""

    status = STATUS_INVALID_ARGUMENT


class UnsupportedIsaError(MlakError, RuntimeError):
    """The requested instruction set is unknown or not supported by this CPU
    (``MLAK_STATUS_UNSUPPORTED_ISA``)."""

    status = STATUS_UNSUPPORTED_ISA


class AllocationError(MlakError, MemoryError):
    """A workspace allocation failed (``MLAK_STATUS_ALLOCATION_FAILED``)."""

    status = STATUS_ALLOCATION_FAILED


class InternalError(MlakError, RuntimeError):
    """A bug inside mlak, such as a caught panic (``MLAK_STATUS_INTERNAL``)."""

    status = STATUS_INTERNAL


_ERRORS = {
    STATUS_NULL_POINTER: NullPointerError,
    STATUS_INVALID_ARGUMENT: InvalidArgumentError,
    STATUS_UNSUPPORTED_ISA: UnsupportedIsaError,
    STATUS_ALLOCATION_FAILED: AllocationError,
    STATUS_INTERNAL: InternalError,
}


def _library_names() -> list[str]:
    if sys.platform == "darwin":
        return ["libmlak.dylib"]
    if sys.platform == "win32":
        return ["mlak.dll"]
    return ["libmlak.so"]


def _candidates() -> list[str]:
    env = os.environ.get("MLAK_LIBRARY")
    if env:
        return [env]
    repo = Path(__file__).resolve().parents[2]
    paths = []
    for profile in ("release", "debug"):
        for name in _library_names():
            p = repo / "target" / profile / name
            if p.is_file():
                paths.append(str(p))
    found = ctypes.util.find_library("mlak")
    if found:
        paths.append(found)
    paths.extend(_library_names())
    return paths


def _load() -> tuple[ctypes.CDLL, str]:
    errors = []
    for path in _candidates():
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            errors.append(f"{path}: {e}")
    raise ImportError(
        "could not load the mlak library; build it with `cargo build --release` "
        "or set MLAK_LIBRARY to its path. Tried: " + "; ".join(errors)
    )


lib, library_path = _load()

_P = ctypes.c_void_p
_I64 = ctypes.c_int64
_F32 = ctypes.c_float


def _declare(name: str, restype, argtypes) -> None:
    fn = getattr(lib, name, None)
    if fn is None:
        return
    fn.restype = restype
    fn.argtypes = argtypes


def has(name: str) -> bool:
    """Returns whether the loaded library exports the C function ``name``."""
    return hasattr(lib, name)


_declare("mlak_last_error", ctypes.c_char_p, [])
_declare("mlak_status_string", ctypes.c_char_p, [ctypes.c_int])


def check(status: int) -> None:
    """Raises the exception mapped from a non-zero ``mlak_status``, carrying
    the library's last error message."""
    if status == STATUS_OK:
        return
    raw = lib.mlak_last_error()
    message = raw.decode("utf-8", "replace") if raw else ""
    if not message:
        message = lib.mlak_status_string(status).decode()
    cls = _ERRORS.get(status, MlakError)
    raise cls(message, status)


def declare(name: str, argtypes, restype=ctypes.c_int) -> None:
    """Declares a library function's signature when the library has it."""
    _declare(name, restype, argtypes)


def ptr(a: np.ndarray | None):
    """Returns the data address of ``a`` for ctypes, or None for None."""
    if a is None:
        return None
    return a.ctypes.data


# ---------------------------------------------------------------------------
# Array checks. Every check runs before the C call, so a rejected call
# writes nothing.


def require_array(name: str, a, dtype=np.float32) -> np.ndarray:
    """Checks that ``a`` is a numpy array of ``dtype``; raises TypeError."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of {np.dtype(dtype).name}, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name} has dtype {a.dtype} but must be {np.dtype(dtype).name}")
    return a


def require_writable(name: str, a: np.ndarray) -> None:
    if not a.flags.writeable:
        raise InvalidArgumentError(f"{name} is read-only but is written by this call")


def as_rows(name: str, a: np.ndarray) -> tuple[int, int, int]:
    """Views a float32 array as ``rows x n`` rows of its last axis.

    Returns ``(rows, n, row_stride)`` with the stride in elements. The last
    axis must be contiguous, and the leading axes must collapse to one
    evenly strided axis (as for any C-contiguous array or row slice of one);
    strides must be positive multiples of the item size.
    """
    if a.ndim == 0:
        raise InvalidArgumentError(f"{name} is a 0-d array; it needs at least one axis")
    item = a.itemsize
    n = a.shape[-1]
    if a.size == 0:
        rows = int(np.prod(a.shape[:-1], dtype=np.int64)) if a.ndim > 1 else 1
        return rows, n, n
    if n > 1 and a.strides[-1] != item:
        raise InvalidArgumentError(
            f"{name} has last-axis stride {a.strides[-1]} bytes; the last axis must be contiguous "
            f"({item} bytes), e.g. use numpy.ascontiguousarray"
        )
    lead = [(s, st) for s, st in zip(a.shape[:-1], a.strides[:-1]) if s != 1]
    if not lead:
        return 1, n, n
    for s, st in lead:
        if st <= 0 or st % item != 0:
            raise InvalidArgumentError(
                f"{name} has stride {st} bytes; strides must be positive multiples of {item} bytes"
            )
    for (s0, st0), (s1, st1) in zip(lead, lead[1:]):
        if st0 != st1 * s1:
            raise InvalidArgumentError(
                f"{name} has strides {a.strides} that do not collapse into rows of one stride; "
                "use numpy.ascontiguousarray"
            )
    rows = int(np.prod([s for s, _ in lead], dtype=np.int64))
    return rows, n, lead[-1][1] // item


def require_shape(name: str, a: np.ndarray, shape: tuple[int, ...]) -> None:
    if tuple(a.shape) != tuple(shape):
        raise InvalidArgumentError(f"{name} has shape {tuple(a.shape)} but must have shape {tuple(shape)}")


def output(name: str, out, shape: tuple[int, ...]) -> np.ndarray:
    """Returns ``out`` after checking it, or a new float32 array of ``shape``."""
    if out is None:
        return np.empty(shape, dtype=np.float32)
    require_array(name, out)
    require_writable(name, out)
    require_shape(name, out, shape)
    return out


def vector(name: str, v, n: int) -> np.ndarray | None:
    """Checks an optional 1-D float32 vector of ``n`` contiguous values."""
    if v is None:
        return None
    require_array(name, v)
    if v.ndim != 1 or v.shape[0] != n:
        raise InvalidArgumentError(f"{name} has shape {tuple(v.shape)} but must have shape ({n},)")
    if n > 1 and v.strides[0] != v.itemsize:
        raise InvalidArgumentError(f"{name} must be contiguous; use numpy.ascontiguousarray")
    return v
