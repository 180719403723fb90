#!/usr/bin/env python3
"""Single-thread f32 GEMM: mlak (through ctypes) against numpy's OpenBLAS.

Times C = A @ B on the shapes of benches/gemm.rs, best of repeated runs,
with both libraries limited to one thread, and prints GFLOP/s and the
ratio mlak / OpenBLAS from the same run.

Usage (OpenBLAS reads its thread count at import, so set it on the command
line; OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, where the environment pins
them, slow a current OpenBLAS and are unset for this command only):

    cargo build --release --lib
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \
        python3 benches/gemm_openblas.py [target/release/libmlak.so]
"""

import ctypes
import os
import sys
import time

import numpy as np

SHAPES = [
    ("square", 256, 256, 256),
    ("square", 512, 512, 512),
    ("square", 1024, 1024, 1024),
    ("square", 2048, 2048, 2048),
    ("square", 4096, 4096, 4096),
    ("decode", 1, 4096, 4096),
    ("decode", 4, 4096, 4096),
    ("decode", 16, 4096, 4096),
    ("moe", 64, 512, 1024),
    ("moe", 64, 1024, 4096),
]


def best_time(fn, budget):
    """Returns the best wall time of fn() over repetitions filling budget seconds."""
    fn()
    best = float("inf")
    start = time.perf_counter()
    reps = 0
    while reps < 3 or (time.perf_counter() - start < budget and reps < 1000):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
        reps += 1
    return best


def openblas_config():
    """Returns a description of the BLAS numpy runs, from threadpoolctl if present."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed; core type not reported"
    infos = [i for i in threadpool_info() if i.get("internal_api") == "openblas"]
    return "; ".join(f"{i.get('version')} {i.get('architecture')} threads={i.get('num_threads')}" for i in infos)


def main():
    if os.environ.get("OPENBLAS_NUM_THREADS") != "1":
        sys.exit("set OPENBLAS_NUM_THREADS=1 on the command line; see the usage in this file")
    path = sys.argv[1] if len(sys.argv) > 1 else "target/release/libmlak.so"
    lib = ctypes.CDLL(path)
    lib.mlak_set_num_threads(ctypes.c_size_t(1))
    f32p = ctypes.POINTER(ctypes.c_float)
    i64 = ctypes.c_int64
    lib.mlak_sgemm.restype = ctypes.c_int
    lib.mlak_sgemm.argtypes = [i64, i64, i64, ctypes.c_float, f32p, i64, i64, f32p, i64, i64,
                               ctypes.c_float, f32p, i64, i64]

    print(f"numpy {np.__version__}; BLAS: {openblas_config()}")
    print(f"{'shape':<8} {'m':>5} {'n':>5} {'k':>5} | {'mlak':>8} {'openblas':>9} {'ratio':>6}")
    rng = np.random.default_rng(1)
    for name, m, n, k in SHAPES:
        a = rng.uniform(-0.5, 0.5, (m, k)).astype(np.float32)
        b = rng.uniform(-0.5, 0.5, (k, n)).astype(np.float32)
        c = np.zeros((m, n), np.float32)
        ap, bp, cp = (x.ctypes.data_as(f32p) for x in (a, b, c))

        def run_mlak():
            status = lib.mlak_sgemm(m, n, k, 1.0, ap, k, 1, bp, n, 1, 0.0, cp, n, 1)
            if status != 0:
                raise RuntimeError(f"mlak_sgemm failed with status {status}")

        def run_numpy():
            np.matmul(a, b, out=c)

        budget = 3.0 if m * n * k > 1 << 30 else 1.0
        t_mlak = best_time(run_mlak, budget)
        t_np = best_time(run_numpy, budget)
        gflops = lambda t: 2.0 * m * n * k / t / 1e9
        print(f"{name:<8} {m:>5} {n:>5} {k:>5} | {gflops(t_mlak):>8.1f} {gflops(t_np):>9.1f} {t_np / t_mlak:>6.2f}")


if __name__ == "__main__":
    main()
