"""mlak: SIMD CPU kernels for transformer building blocks, through ctypes.

Each kernel family is a small module (:mod:`mlak.softmax`,
:mod:`mlak.glue`, ...) whose functions take numpy arrays, check their
dtype, shape and strides, call the C library and raise an exception that
carries the library's message:

- :class:`MlakError` is the base class; ``.status`` is the ``mlak_status``
  code and ``.message`` the text of ``mlak_last_error``.
- :class:`InvalidArgumentError` and :class:`NullPointerError` are also
  ``ValueError``; :class:`UnsupportedIsaError` and :class:`InternalError`
  are also ``RuntimeError``; :class:`AllocationError` is also
  ``MemoryError``.
- A non-array argument or a wrong dtype raises ``TypeError``.

The shared library is found through ``MLAK_LIBRARY``, then the repository's
``target/release`` and ``target/debug``, then the system loader.
"""

from ._lib import (
    AllocationError,
    InternalError,
    InvalidArgumentError,
    MlakError,
    NullPointerError,
    UnsupportedIsaError,
    library_path,
)
from .core import (
    ISAS,
    best_isa,
    cpu_features,
    get_isa,
    isa_supported,
    last_dispatched_isa,
    num_threads,
    set_isa,
    set_num_threads,
    version,
)
from .glue import bias_add, erf, gelu, gelu_tanh, layernorm, rmsnorm, rope, silu, swiglu, tanh
from .softmax import CONFIDENCE_DTYPE, confidence, early_exit, log_softmax, softmax

__version__ = "0.1.0"
