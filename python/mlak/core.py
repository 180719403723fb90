"""Library version, instruction-set dispatch control and threading."""

from __future__ import annotations

import ctypes

from . import _lib
from ._lib import InvalidArgumentError, UnsupportedIsaError, check, lib

__all__ = [
    "version",
    "best_isa",
    "get_isa",
    "set_isa",
    "isa_supported",
    "last_dispatched_isa",
    "cpu_features",
    "set_num_threads",
    "num_threads",
    "ISAS",
]

#: Dispatch levels by their ``mlak_isa`` code.
ISAS = ("scalar", "avx2", "avx512", "neon")

_lib.declare("mlak_version", [], ctypes.c_char_p)
_lib.declare("mlak_get_isa", [ctypes.POINTER(ctypes.c_int)])
_lib.declare("mlak_set_isa_by_name", [ctypes.c_char_p])
_lib.declare("mlak_best_isa", [], ctypes.c_int)
_lib.declare("mlak_isa_supported", [ctypes.c_uint32], ctypes.c_bool)
_lib.declare("mlak_last_dispatched_isa", [], ctypes.c_int32)
_lib.declare("mlak_cpu_features", [], ctypes.c_uint64)
_lib.declare("mlak_set_num_threads", [ctypes.c_size_t], None)
_lib.declare("mlak_get_num_threads", [ctypes.POINTER(ctypes.c_size_t)])


def _isa_name(code: int) -> str:
    return ISAS[code] if 0 <= code < len(ISAS) else f"unknown({code})"


def version() -> str:
    """Returns the library version, such as ``"0.1.0"``."""
    return lib.mlak_version().decode()


def best_isa() -> str:
    """Returns the name of the best instruction set this CPU runs."""
    return _isa_name(lib.mlak_best_isa())


def get_isa() -> str:
    """Returns the name of the instruction set that calls use now.

    Raises UnsupportedIsaError when ``MLAK_ISA`` names an unknown or
    unsupported level and no :func:`set_isa` has overridden it.
    """
    out = ctypes.c_int(-1)
    check(lib.mlak_get_isa(ctypes.byref(out)))
    return _isa_name(out.value)


def set_isa(name: str) -> None:
    """Caps dispatch for the whole process at ``name`` ("scalar", "avx2",
    "avx512" or "neon"). Raises UnsupportedIsaError for an unknown name or a
    level this CPU lacks; dispatch is then unchanged."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    check(lib.mlak_set_isa_by_name(name.encode()))


def isa_supported(name: str) -> bool:
    """Returns whether this CPU runs the named level; False for unknown names."""
    return name in ISAS and bool(lib.mlak_isa_supported(ISAS.index(name)))


def last_dispatched_isa() -> str | None:
    """Returns the level the most recent kernel call on this thread ran, or
    None before the first one."""
    code = lib.mlak_last_dispatched_isa()
    return None if code < 0 else _isa_name(code)


def cpu_features() -> int:
    """Returns the detected CPU feature bits (``MLAK_CPU_*`` in mlak.h)."""
    return int(lib.mlak_cpu_features())


def set_num_threads(n: int) -> None:
    """Sets the thread count for large calls; 0 restores the default
    (``MLAK_NUM_THREADS``, else the core count)."""
    if not isinstance(n, int) or n < 0:
        raise InvalidArgumentError(f"n = {n!r} is invalid; it must be an int >= 0")
    lib.mlak_set_num_threads(n)


def num_threads() -> int:
    """Returns the thread count used for large calls."""
    out = ctypes.c_size_t(0)
    check(lib.mlak_get_num_threads(ctypes.byref(out)))
    return int(out.value)
