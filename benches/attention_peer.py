"""PyTorch peer of benches/attention.rs: scaled_dot_product_attention on the
CPU with one thread, on the same shapes, reporting GFLOP/s for prefill and
GB/s of K and V read for decode (1 GB = 1e9 bytes; criterion's GiB/s are
2^30 bytes).

FLOPs count 4*D per unmasked (query, key) pair, as the Rust benchmark does.
Run: python3 benches/attention_peer.py
"""

import time

import torch
import torch.nn.functional as F


def best_seconds(fn, min_time=3.0, min_runs=3):
    """Return the fastest of repeated timed runs after one warm-up run."""
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), sorted(times)[len(times) // 2]


def prefill(heads, length, dim, causal):
    q = torch.rand(1, heads, length, dim) - 0.5
    k = torch.rand(1, heads, length, dim) - 0.5
    v = torch.rand(1, heads, length, dim) - 0.5
    pairs = length * (length + 1) // 2 if causal else length * length
    flops = 4 * dim * pairs * heads
    best, median = best_seconds(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal), min_time=8.0)
    name = f"prefill H{heads} L{length} D{dim}{' causal' if causal else ''}"
    print(f"{name}: median {median * 1e3:.2f} ms, {flops / median / 1e9:.1f} GFLOP/s (best {flops / best / 1e9:.1f})")


def decode(q_heads, kv_heads, kv_len, dim, dtype):
    q = (torch.rand(1, q_heads, 1, dim) - 0.5).to(dtype)
    k = (torch.rand(1, kv_heads, kv_len, dim) - 0.5).to(dtype)
    v = (torch.rand(1, kv_heads, kv_len, dim) - 0.5).to(dtype)
    nbytes = 2 * kv_heads * kv_len * dim * k.element_size()
    best, median = best_seconds(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True))
    print(f"decode {str(dtype).split('.')[-1]} Lkv {kv_len}: median {median * 1e3:.2f} ms, "
          f"{nbytes / median / 1e9:.2f} GB/s (best {nbytes / best / 1e9:.2f})")


def main():
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    prefill(32, 2048, 128, True)
    prefill(12, 512, 64, False)
    # PyTorch's CPU SDPA needs Q, K and V of one dtype, so the f16 peer
    # also has an f16 query, unlike mlak, which keeps Q in f32.
    for kv_len in (2048, 8192, 32768):
        for dtype in (torch.float32, torch.float16):
            decode(32, 8, kv_len, 128, dtype)


if __name__ == "__main__":
    main()
