"""MoE routing, dispatch and the fused layer through the Python package,
against float64 numpy references, and the argument checks."""

import numpy as np
import pytest

import mlak
from mlak import moe


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def reference_grouped(logits, bias, groups, topk_group, top_k, scale):
    """DeepSeek-V3 routing in float64; returns (ids, weights) per token."""
    s = sigmoid(logits.astype(np.float64))
    biased = s + bias
    t, e = s.shape
    ids, weights = [], []
    for r in range(t):
        g = biased[r].reshape(groups, -1)
        group_score = np.sort(g, axis=1)[:, -2:].sum(axis=1)
        kept = np.argsort(-group_score, kind="stable")[:topk_group]
        masked = np.full(e, -np.inf)
        for k in kept:
            span = slice(k * (e // groups), (k + 1) * (e // groups))
            masked[span] = biased[r, span]
        chosen = np.argsort(-masked, kind="stable")[:top_k]
        w = s[r, chosen]
        ids.append(chosen)
        weights.append(w / w.sum() * scale)
    return np.array(ids), np.array(weights)


def silu(z):
    return z / (1.0 + np.exp(-z))


def test_softmax_topk_matches_numpy():
    logits = np.random.default_rng(0).normal(size=(9, 16)).astype(np.float32)
    ids, w, probs = moe.route_softmax_topk(logits, 3, return_probs=True)
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    want = np.argsort(-p, axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(ids, want)
    chosen = np.take_along_axis(p, want, 1)
    np.testing.assert_allclose(w, chosen / chosen.sum(1, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(probs, p, rtol=1e-5, atol=1e-7)


def test_grouped_sigmoid_matches_numpy():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(12, 64)).astype(np.float32)
    bias = (rng.normal(size=64) * 0.1).astype(np.float32)
    ids, w = moe.route_grouped_sigmoid(logits, bias, 8, 3, 6, 2.5)
    want_ids, want_w = reference_grouped(logits, bias, 8, 3, 6, 2.5)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(w, want_w, rtol=1e-5)


def test_top1_capacity_drops_late_tokens():
    logits = np.zeros((6, 2), dtype=np.float32)
    logits[:, 0] = 5.0
    ids, w, dropped, capacity = moe.route_top1_capacity(logits, 1.0)
    assert capacity == 3
    assert ids.tolist() == [0, 0, 0, -1, -1, -1]
    assert dropped.tolist() == [3, 4, 5]
    assert w[3] == 0.0


def test_stats_z_loss_and_bias_update():
    logits = np.random.default_rng(2).normal(size=(10, 4)).astype(np.float32)
    ids, _, probs = moe.route_softmax_topk(logits, 1, return_probs=True)
    counts, mean_probs, aux = moe.load_stats(ids, probs)
    np.testing.assert_array_equal(counts, np.bincount(ids[:, 0], minlength=4))
    np.testing.assert_allclose(mean_probs, probs.astype(np.float64).mean(0), rtol=1e-5)
    np.testing.assert_allclose(aux, 4 * np.sum(counts / counts.sum() * probs.astype(np.float64).mean(0)), rtol=1e-5)
    z = logits.astype(np.float64)
    lse = np.log(np.exp(z).sum(1))
    np.testing.assert_allclose(moe.router_z_loss(logits), np.mean(lse ** 2), rtol=1e-5)
    bias = np.zeros(4, dtype=np.float32)
    moe.update_bias(bias, counts, 0.1)
    np.testing.assert_allclose(bias, 0.1 * np.sign(counts.mean() - counts), rtol=1e-6)


def test_layout_gather_combine_round_trip():
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 5, size=(7, 2)).astype(np.int32)
    ids[1, 1] = -1
    counts, offsets, token_slot, slot_token = moe.layout(ids, 5, block=4)
    np.testing.assert_array_equal(counts, np.bincount(ids[ids >= 0], minlength=5))
    assert np.all(offsets % 4 == 0)
    assert token_slot[1, 1] == -1
    x = rng.normal(size=(7, 10)).astype(np.float32)
    rows = moe.gather(x, slot_token)
    for s, t in enumerate(slot_token):
        np.testing.assert_array_equal(rows[s], x[t] if t >= 0 else 0.0)
    w = rng.random(size=(7, 2)).astype(np.float32)
    out = moe.combine(rows, token_slot, w)
    want = np.where(ids[..., None] >= 0, w[..., None] * x[:, None, :], 0.0).sum(1)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
    moe.combine(rows, token_slot, w, out=out, accumulate=True)
    np.testing.assert_allclose(out, 2 * want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(moe.rank_send_counts(counts[:4].copy(), 2), [counts[:2].sum(), counts[2:4].sum()])
    half = moe.gather(x.astype(np.float16), slot_token)
    assert half.dtype == np.float16


# Tolerance: f32 GEMMs over d = 32 and width 16 with unit-scale values;
# 1e-4 relative plus 1e-5 absolute.
@pytest.mark.parametrize("tokens", [1, 5, 33])
def test_layer_matches_numpy(tokens):
    rng = np.random.default_rng(tokens)
    e, d, width, k = 8, 32, 16, 2
    router = (rng.normal(size=(e, d)) * 0.3).astype(np.float32)
    gate = (rng.normal(size=(e, width, d)) * 0.2).astype(np.float32)
    up = (rng.normal(size=(e, width, d)) * 0.2).astype(np.float32)
    down = (rng.normal(size=(e, d, width)) * 0.2).astype(np.float32)
    layer = moe.MoeLayer(router, gate, up, down, router="softmax_topk", top_k=k)
    x = rng.normal(size=(tokens, d)).astype(np.float32)
    y = layer(x)
    ids, w = moe.route_softmax_topk(np.ascontiguousarray(x @ router.T), k)
    want = np.zeros((tokens, d))
    x64 = x.astype(np.float64)
    for t in range(tokens):
        for j in range(k):
            ex = ids[t, j]
            h = silu(gate[ex] @ x64[t]) * (up[ex] @ x64[t])
            want[t] += w[t, j] * (down[ex] @ h)
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5)


def test_rejects_bad_arguments():
    logits = np.zeros((3, 8), dtype=np.float32)
    with pytest.raises(TypeError, match="logits has dtype"):
        moe.route_softmax_topk(logits.astype(np.float64), 2)
    with pytest.raises(ValueError, match="C-contiguous"):
        moe.route_softmax_topk(np.zeros((8, 3), dtype=np.float32).T, 2)
    with pytest.raises(ValueError, match="k = -1"):
        moe.route_softmax_topk(logits, -1)
    with pytest.raises(mlak.MlakInvalidArgumentError):
        moe.route_softmax_topk(logits, 9)
    with pytest.raises(ValueError, match="bias has 4 entries"):
        moe.route_grouped_sigmoid(logits, np.zeros(4, dtype=np.float32), 2, 1, 2)
    with pytest.raises(mlak.MlakInvalidArgumentError):
        moe.route_grouped_sigmoid(logits, np.zeros(8, dtype=np.float32), 3, 1, 2)
    with pytest.raises(mlak.MlakInvalidArgumentError):
        moe.route_top1_capacity(logits, 0.0)
    with pytest.raises(mlak.MlakInvalidArgumentError):
        moe.layout(np.array([[9]], dtype=np.int32), 4)
    with pytest.raises(ValueError, match="accumulate"):
        moe.combine(np.zeros((1, 2), np.float32), np.zeros((1, 1), np.int64), np.ones((1, 1), np.float32),
                    accumulate=True)
    with pytest.raises(mlak.MlakInvalidArgumentError):
        moe.combine(np.zeros((1, 2), np.float32), np.full((1, 1), 5, np.int64), np.ones((1, 1), np.float32))
    with pytest.raises(mlak.MlakInvalidArgumentError):
        moe.rank_send_counts(np.zeros(5, np.int64), 2)
    router = np.zeros((4, 8), np.float32)
    gate = np.zeros((4, 3, 8), np.float32)
    with pytest.raises(ValueError, match="expert_down has shape"):
        moe.MoeLayer(router, gate, gate, gate)
    with pytest.raises(ValueError, match="router = 'x'"):
        moe.MoeLayer(router, gate, gate, np.zeros((4, 8, 3), np.float32), router="x")
    layer = moe.MoeLayer(router, gate, gate, np.zeros((4, 8, 3), np.float32), top_k=1)
    with pytest.raises(ValueError, match="d = 8"):
        layer(np.zeros((2, 7), np.float32))
