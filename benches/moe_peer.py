"""PyTorch peer of benches/moe.rs: the same DeepSeek-V3-shaped MoE layer
(64 experts, top-6, 8 groups with 3 kept, d = 1024, expert FFN width 512)
as a loop over the experts that received tokens, plus the gather, the
combine and a memcpy of the same bytes. CPU, one thread.

Run: python3 benches/moe_peer.py
"""

import statistics
import time

import torch

E, TOP_K, GROUPS, TOPK_GROUP, D, WIDTH = 64, 6, 8, 3, 1024, 512
SCALE = 2.5


def timed(fn, reps):
    """Returns the median wall time of `fn` over `reps` runs, in seconds."""
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def route(x, router_weight, bias):
    """DeepSeek-V3 routing: sigmoid scores, biased group-limited top-k."""
    scores = torch.sigmoid(x @ router_weight.T)
    biased = scores + bias
    t = x.shape[0]
    group_scores = biased.view(t, GROUPS, -1).topk(2, dim=-1)[0].sum(dim=-1)
    kept = group_scores.topk(TOPK_GROUP, dim=-1)[1]
    mask = torch.zeros_like(group_scores).scatter_(1, kept, 1.0)
    expert_mask = mask.unsqueeze(-1).expand(t, GROUPS, E // GROUPS).reshape(t, E)
    choice = biased.masked_fill(expert_mask == 0, float("-inf"))
    ids = choice.topk(TOP_K, dim=-1)[1]
    w = scores.gather(1, ids)
    w = w / w.sum(dim=-1, keepdim=True) * SCALE
    return ids, w


def layer(x, router_weight, bias, gate, up, down):
    """Runs the MoE layer as a loop over the experts that received tokens."""
    ids, w = route(x, router_weight, bias)
    out = torch.zeros_like(x)
    flat = ids.view(-1)
    order = flat.argsort(stable=True)
    counts = torch.bincount(flat, minlength=E).tolist()
    tokens = order // TOP_K
    weights = w.view(-1)[order]
    start = 0
    xw = x.to(gate.dtype)
    for e, n in enumerate(counts):
        if n == 0:
            continue
        tok = tokens[start:start + n]
        xe = xw[tok]
        h = torch.nn.functional.silu(xe @ gate[e].T) * (xe @ up[e].T)
        y = (h @ down[e].T).float() * weights[start:start + n, None]
        out.index_add_(0, tok, y)
        start += n
    return out


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    router_weight = torch.randn(E, D) * 0.05
    bias = torch.randn(E) * 0.01
    gate = torch.randn(E, WIDTH, D) * 0.03
    up = torch.randn(E, WIDTH, D) * 0.03
    down = torch.randn(E, D, WIDTH) * 0.04
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    for dtype in (torch.float32, torch.bfloat16):
        g, u, dn = gate.to(dtype), up.to(dtype), down.to(dtype)
        for t in (1, 512):
            x = torch.randn(t, D)
            reps = 20 if t == 1 else 3
            s = timed(lambda: layer(x, router_weight, bias, g, u, dn), reps)
            name = "f32" if dtype == torch.float32 else "bf16"
            print(f"layer {name} T={t}: {s * 1e3:.3f} ms")

    t = 512
    x = torch.randn(t, D)
    ids = torch.randn(t, E).topk(TOP_K, dim=-1)[1]
    order = ids.view(-1).argsort(stable=True)
    slot_token = order // TOP_K
    slots = slot_token.numel()
    token_slot = torch.empty_like(order)
    token_slot[order] = torch.arange(slots)
    w = torch.rand(t, TOP_K)
    ys = torch.randn(slots, D)
    src = torch.randn(slots, D)
    dst = torch.empty_like(src)
    moved = 2 * slots * D * 4
    for name, fn, nbytes in (
        ("memcpy_f32", lambda: dst.copy_(src), moved),
        ("gather_f32", lambda: torch.index_select(x, 0, slot_token), moved),
        ("combine_f32", lambda: (ys[token_slot].view(t, TOP_K, D) * w[..., None]).sum(dim=1), (slots + t) * D * 4),
    ):
        s = timed(fn, 50)
        print(f"{name}: {nbytes / s / 1e9:.2f} GB/s ({s * 1e6:.1f} us)")


if __name__ == "__main__":
    main()
