"""Peer throughput for benches/entmax.rs: the PyTorch `entmax` package on
the CPU, single thread, at the same shapes and with the same unit.

Setup (CPU is enough; the default PyPI torch wheel also works):
    python3 -m venv /tmp/entmax-peer && /tmp/entmax-peer/bin/pip install torch entmax
Run:
    /tmp/entmax-peer/bin/python benches/entmax_peer.py

Throughput counts the f32 input bytes (rows * n * 4) once, as the Rust
benchmark does, and is printed in GiB/s (criterion's unit) and GB/s.
Logits are 2 * N(0, 1). Each function runs until at least 1 s and 3 calls
have passed; the median call time is reported.
"""

import statistics
import sys
import time

try:
    import torch
    import entmax
except ImportError as error:
    sys.exit(f"missing package ({error}); install them with: pip install torch entmax")

SHAPES = [(8192, 64), (4096, 1024), (256, 32768)]
ALPHA = 1.3  # the alpha of the Rust benchmark's general alpha-entmax case


def median_seconds(fn, x):
    fn(x)  # warm-up
    times = []
    start = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < 1.0:
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    functions = {
        "softmax": lambda x: torch.softmax(x, dim=-1),
        "sparsemax": lambda x: entmax.sparsemax(x, dim=-1),
        "entmax15": lambda x: entmax.entmax15(x, dim=-1),
        f"entmax_bisect_{ALPHA}": lambda x: entmax.entmax_bisect(x, alpha=ALPHA, dim=-1),
    }
    print(f"torch {torch.__version__}, entmax {getattr(entmax, '__version__', 'unknown')}, threads {torch.get_num_threads()}")
    with torch.no_grad():
        for rows, n in SHAPES:
            x = 2.0 * torch.randn(rows, n, dtype=torch.float32)
            nbytes = rows * n * 4
            for name, fn in functions.items():
                seconds = median_seconds(fn, x)
                print(f"{rows}x{n} {name}: {seconds * 1e3:.3f} ms, "
                      f"{nbytes / seconds / 2**30:.4f} GiB/s, {nbytes / seconds / 1e9:.4f} GB/s")


if __name__ == "__main__":
    main()
