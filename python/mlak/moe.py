"""Mixture-of-experts routing, dispatch layout, gather, combine and the
fused SwiGLU expert layer.

Token-major arrays (logits, ids, weights, the layer's x and out) must be
C-contiguous; gather and combine take rows with any positive row stride.
"""

import ctypes

import numpy as np

from ._lib import F32P, I64, as_rows, check, declare, ptr

# mlak_moe_router_kind codes.
ROUTER_SOFTMAX_TOP_K, ROUTER_TOP1_CAPACITY, ROUTER_GROUPED_SIGMOID = 0, 1, 2
# mlak_dtype codes.
DTYPE_F32, DTYPE_F16, DTYPE_BF16 = 0, 1, 2

_VOIDP = ctypes.c_void_p
_I32P = ctypes.POINTER(ctypes.c_int32)
_I64P = ctypes.POINTER(ctypes.c_int64)


class GroupedParams(ctypes.Structure):
    _fields_ = [
        ("num_groups", ctypes.c_int64),
        ("topk_group", ctypes.c_int64),
        ("top_k", ctypes.c_int64),
        ("routed_scaling_factor", ctypes.c_float),
    ]


class LayerParams(ctypes.Structure):
    _fields_ = [
        ("d", ctypes.c_int64),
        ("experts", ctypes.c_int64),
        ("ffn_width", ctypes.c_int64),
        ("shared_width", ctypes.c_int64),
        ("router", ctypes.c_uint32),
        ("top_k", ctypes.c_int64),
        ("renormalize", ctypes.c_bool),
        ("capacity_factor", ctypes.c_float),
        ("num_groups", ctypes.c_int64),
        ("topk_group", ctypes.c_int64),
        ("routed_scaling_factor", ctypes.c_float),
        ("bias", F32P),
        ("router_weight", F32P),
        ("weight_dtype", ctypes.c_uint32),
        ("expert_gate", _VOIDP),
        ("expert_up", _VOIDP),
        ("expert_down", _VOIDP),
        ("shared_gate", _VOIDP),
        ("shared_up", _VOIDP),
        ("shared_down", _VOIDP),
    ]


_route_topk = declare("mlak_moe_route_softmax_topk_f32", [F32P, I64, I64, I64, ctypes.c_bool, _I32P, F32P, F32P])
_route_top1 = declare(
    "mlak_moe_route_top1_capacity_f32",
    [F32P, I64, I64, ctypes.c_float, _I32P, F32P, _I64P, F32P, _I64P, _I64P],
)
_route_grouped = declare(
    "mlak_moe_route_grouped_sigmoid_f32",
    [F32P, I64, I64, ctypes.POINTER(GroupedParams), F32P, _I32P, F32P, F32P],
)
_load_stats = declare("mlak_moe_load_stats_f32", [_I32P, F32P, I64, I64, I64, _I64P, F32P, F32P])
_z_loss = declare("mlak_moe_router_z_loss_f32", [F32P, I64, I64, F32P])
_update_bias = declare("mlak_moe_update_bias_f32", [F32P, _I64P, I64, ctypes.c_float])
_layout = declare("mlak_moe_layout", [_I32P, I64, I64, I64, I64, _I64P, _I64P, _I64P, _I64P, I64, _I64P])
_rank_send_counts = declare("mlak_moe_rank_send_counts", [_I64P, I64, I64, _I64P])
_gather = declare("mlak_moe_gather", [ctypes.c_uint32, _VOIDP, I64, I64, I64, _I64P, I64, _VOIDP, I64])
_combine = declare("mlak_moe_combine_f32", [F32P, I64, I64, I64, _I64P, F32P, I64, I64, F32P, I64, ctypes.c_bool])
_layer = declare("mlak_moe_layer_f32", [ctypes.POINTER(LayerParams), F32P, I64, F32P])


def _contiguous(name, a, dtype, ndim):
    """Checks type, dtype, rank and C-contiguity of an input array."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name} has dtype {a.dtype}; it must be {np.dtype(dtype)}")
    if a.ndim != ndim:
        raise ValueError(f"{name} has {a.ndim} dimensions; it must have {ndim}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous; pass numpy.ascontiguousarray({name})")
    return a


def _logits(logits):
    _contiguous("logits", logits, np.float32, 2)
    return logits.shape


def route_softmax_topk(logits, k, renormalize=True, return_probs=False):
    """Routes each token (row of float32 `logits`, tokens x experts) to its
    `k` most probable experts. Returns (ids int32, weights float32), both
    tokens x k, best first, plus the tokens x experts probabilities when
    `return_probs`."""
    tokens, experts = _logits(logits)
    if k < 0:
        raise ValueError(f"k = {k} is invalid; it must be in 1 ..= experts = {experts}")
    ids = np.empty((tokens, k), dtype=np.int32)
    weights = np.empty((tokens, k), dtype=np.float32)
    probs = np.empty((tokens, experts), dtype=np.float32) if return_probs else None
    check(_route_topk(ptr(logits), tokens, experts, k, renormalize, ptr(ids, ctypes.c_int32), ptr(weights),
                      ptr(probs) if probs is not None else None))
    return (ids, weights, probs) if return_probs else (ids, weights)


def route_top1_capacity(logits, capacity_factor, return_probs=False):
    """Routes each token to its most probable expert with at most
    min(tokens, ceil(capacity_factor * tokens / experts)) tokens per expert.
    Returns (ids, weights, dropped, capacity): ids and weights per token
    (-1 and 0 for a dropped token), the dropped token indices in order and
    the capacity; plus the probabilities when `return_probs`."""
    tokens, experts = _logits(logits)
    ids = np.empty(tokens, dtype=np.int32)
    weights = np.empty(tokens, dtype=np.float32)
    dropped = np.empty(tokens, dtype=np.int64)
    probs = np.empty((tokens, experts), dtype=np.float32) if return_probs else None
    capacity, num_dropped = ctypes.c_int64(0), ctypes.c_int64(0)
    check(_route_top1(ptr(logits), tokens, experts, capacity_factor, ptr(ids, ctypes.c_int32), ptr(weights),
                      ptr(dropped, ctypes.c_int64), ptr(probs) if probs is not None else None,
                      ctypes.byref(capacity), ctypes.byref(num_dropped)))
    result = (ids, weights, dropped[:num_dropped.value].copy(), capacity.value)
    return result + (probs,) if return_probs else result


def route_grouped_sigmoid(logits, bias, num_groups, topk_group, top_k, routed_scaling_factor=1.0,
                          return_scores=False):
    """Routes each token with the DeepSeek-V3 group-limited sigmoid rule:
    `bias` (float32, one per expert) steers selection only, the
    `topk_group` best of `num_groups` groups are kept and `top_k` experts
    chosen among them. Returns (ids, weights), both tokens x top_k, plus the
    sigmoid scores when `return_scores`."""
    tokens, experts = _logits(logits)
    _contiguous("bias", bias, np.float32, 1)
    if bias.shape[0] != experts:
        raise ValueError(f"bias has {bias.shape[0]} entries; it must have experts = {experts}")
    if top_k < 0:
        raise ValueError(f"top_k = {top_k} is invalid; it must be >= 1")
    params = GroupedParams(num_groups, topk_group, top_k, routed_scaling_factor)
    ids = np.empty((tokens, top_k), dtype=np.int32)
    weights = np.empty((tokens, top_k), dtype=np.float32)
    scores = np.empty((tokens, experts), dtype=np.float32) if return_scores else None
    check(_route_grouped(ptr(logits), tokens, experts, ctypes.byref(params), ptr(bias), ptr(ids, ctypes.c_int32),
                         ptr(weights), ptr(scores) if scores is not None else None))
    return (ids, weights, scores) if return_scores else (ids, weights)


def load_stats(ids, probs):
    """Returns (counts int64, mean_probs float32, aux_loss float) from the
    tokens x k expert ids (int32, negative ids skipped) and the tokens x
    experts router probabilities."""
    _contiguous("ids", ids, np.int32, 2)
    _contiguous("probs", probs, np.float32, 2)
    tokens, k = ids.shape
    if probs.shape[0] != tokens:
        raise ValueError(f"probs has {probs.shape[0]} rows; it must have one per token ({tokens})")
    experts = probs.shape[1]
    counts = np.empty(experts, dtype=np.int64)
    mean_probs = np.empty(experts, dtype=np.float32)
    aux = ctypes.c_float(0.0)
    check(_load_stats(ptr(ids, ctypes.c_int32), ptr(probs), tokens, experts, k, ptr(counts, ctypes.c_int64),
                      ptr(mean_probs), ctypes.byref(aux)))
    return counts, mean_probs, aux.value


def router_z_loss(logits):
    """Returns the mean over tokens of logsumexp(row) squared."""
    tokens, experts = _logits(logits)
    out = ctypes.c_float(0.0)
    check(_z_loss(ptr(logits), tokens, experts, ctypes.byref(out)))
    return out.value


def update_bias(bias, counts, step):
    """Applies bias[e] += step * sign(mean(counts) - counts[e]) in place to
    a float32 `bias` and returns it."""
    _contiguous("bias", bias, np.float32, 1)
    _contiguous("counts", counts, np.int64, 1)
    if not bias.flags.writeable:
        raise ValueError("bias is read-only")
    if counts.shape != bias.shape:
        raise ValueError(f"counts has shape {counts.shape}; it must match bias's {bias.shape}")
    check(_update_bias(ptr(bias), ptr(counts, ctypes.c_int64), bias.shape[0], step))
    return bias


def layout(ids, experts, block=1):
    """Builds the expert-contiguous layout of tokens x k int32 `ids`
    (negative = dropped), each expert's segment padded to a multiple of
    `block`. Returns (counts, offsets, token_slot, slot_token): int64 arrays
    of experts, experts + 1, tokens x k and num_slots entries."""
    _contiguous("ids", ids, np.int32, 2)
    tokens, k = ids.shape
    if experts < 0 or block < 1:
        raise ValueError(f"experts = {experts}, block = {block} are invalid; experts must be >= 0, block >= 1")
    capacity = tokens * k + min(experts, tokens * k) * (block - 1)
    counts = np.empty(experts, dtype=np.int64)
    offsets = np.empty(experts + 1, dtype=np.int64)
    token_slot = np.empty((tokens, k), dtype=np.int64)
    slot_token = np.empty(max(capacity, 0), dtype=np.int64)
    num_slots = ctypes.c_int64(0)
    i64 = ctypes.c_int64
    check(_layout(ptr(ids, ctypes.c_int32), tokens, k, experts, block, ptr(counts, i64), ptr(offsets, i64),
                  ptr(token_slot, i64), ptr(slot_token, i64), capacity, ctypes.byref(num_slots)))
    return counts, offsets, token_slot, slot_token[:num_slots.value].copy()


def rank_send_counts(counts, ranks):
    """Returns the int64 per-rank totals of `counts` (int64, one per expert)
    when the experts are split contiguously over `ranks` ranks."""
    _contiguous("counts", counts, np.int64, 1)
    if ranks < 1:
        raise ValueError(f"ranks = {ranks} is invalid; it must be >= 1 and divide experts")
    out = np.empty(ranks, dtype=np.int64)
    check(_rank_send_counts(ptr(counts, ctypes.c_int64), counts.shape[0], ranks, ptr(out, ctypes.c_int64)))
    return out


def _row_dtype_code(name, a, encoding):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype == np.float32:
        return DTYPE_F32
    if a.dtype == np.float16:
        return DTYPE_F16
    if a.dtype.name == "bfloat16" or (a.dtype == np.uint16 and encoding == "bf16"):
        return DTYPE_BF16
    if a.dtype == np.uint16 and encoding == "f16":
        return DTYPE_F16
    raise TypeError(f"{name} has dtype {a.dtype}; it must be float32, float16, or uint16 with encoding "
                    "'f16' or 'bf16'")


def gather(src, slot_token, out=None, encoding=None):
    """Returns the rows of `src` (tokens x d, float32, float16 or 16-bit
    patterns named by `encoding`) in slot order: row s is
    src[slot_token[s]], copied bit for bit, or zeros where slot_token[s]
    is -1."""
    code = _row_dtype_code("src", src, encoding)
    s2, ss = as_rows("src", src, dtype=src.dtype)
    _contiguous("slot_token", slot_token, np.int64, 1)
    num_slots = slot_token.shape[0]
    if out is None:
        out = np.empty((num_slots, s2.shape[1]), dtype=src.dtype)
    if not isinstance(out, np.ndarray) or out.dtype != src.dtype:
        raise TypeError(f"out must be a numpy.ndarray of src's dtype {src.dtype}")
    o2, os_ = as_rows("out", out, dtype=src.dtype, writable=True)
    if o2.shape != (num_slots, s2.shape[1]):
        raise ValueError(f"out has shape {out.shape}; it must be ({num_slots}, {s2.shape[1]})")
    check(_gather(code, s2.ctypes.data_as(_VOIDP), ss, s2.shape[0], s2.shape[1], ptr(slot_token, ctypes.c_int64),
                  num_slots, o2.ctypes.data_as(_VOIDP), os_))
    return out


def combine(y, token_slot, weights, out=None, accumulate=False):
    """Returns out[t] = sum_j weights[t, j] * y[token_slot[t, j]] (or adds
    it to `out` when `accumulate`): float32 expert outputs `y`
    (num_slots x d) back in token order, with int64 `token_slot` and
    float32 `weights` of shape tokens x k; a slot of -1 adds nothing."""
    y2, ys = as_rows("y", y)
    _contiguous("token_slot", token_slot, np.int64, 2)
    _contiguous("weights", weights, np.float32, 2)
    if weights.shape != token_slot.shape:
        raise ValueError(f"weights has shape {weights.shape}; it must match token_slot's {token_slot.shape}")
    tokens, k = token_slot.shape
    if out is None:
        if accumulate:
            raise ValueError("accumulate=True needs an out array to add to")
        out = np.empty((tokens, y2.shape[1]), dtype=np.float32)
    o2, os_ = as_rows("out", out, writable=True)
    if o2.shape != (tokens, y2.shape[1]):
        raise ValueError(f"out has shape {out.shape}; it must be ({tokens}, {y2.shape[1]})")
    check(_combine(ptr(y2), ys, y2.shape[0], y2.shape[1], ptr(token_slot, ctypes.c_int64), ptr(weights), tokens, k,
                   ptr(o2), os_, accumulate))
    return out


class MoeLayer:
    """A mixture-of-experts SwiGLU FFN layer over fixed weights.

    Weights use the PyTorch Linear layout stacked over experts:
    `expert_gate` and `expert_up` are experts x ffn_width x d,
    `expert_down` experts x d x ffn_width, `router_weight` experts x d
    float32. Expert weights are float32, or bfloat16 as uint16 bit
    patterns with ``weight_dtype="bf16"``. `router` is "softmax_topk",
    "top1_capacity" or "grouped_sigmoid". The layer keeps references to
    the arrays, so they must not be resized while it lives."""

    _ROUTERS = {"softmax_topk": ROUTER_SOFTMAX_TOP_K, "top1_capacity": ROUTER_TOP1_CAPACITY,
                "grouped_sigmoid": ROUTER_GROUPED_SIGMOID}

    def __init__(self, router_weight, expert_gate, expert_up, expert_down, router="softmax_topk", top_k=1,
                 renormalize=True, capacity_factor=1.0, num_groups=1, topk_group=1, routed_scaling_factor=1.0,
                 bias=None, shared_gate=None, shared_up=None, shared_down=None, weight_dtype="f32"):
        if router not in self._ROUTERS:
            raise ValueError(f"router = {router!r} is invalid; it must be one of {sorted(self._ROUTERS)}")
        if weight_dtype not in ("f32", "bf16"):
            raise ValueError(f"weight_dtype = {weight_dtype!r} is invalid; it must be 'f32' or 'bf16'")
        wtype = np.float32 if weight_dtype == "f32" else np.uint16
        _contiguous("router_weight", router_weight, np.float32, 2)
        experts, d = router_weight.shape
        _contiguous("expert_gate", expert_gate, wtype, 3)
        _contiguous("expert_up", expert_up, wtype, 3)
        _contiguous("expert_down", expert_down, wtype, 3)
        width = expert_gate.shape[1]
        for name, a, shape in (("expert_gate", expert_gate, (experts, width, d)),
                               ("expert_up", expert_up, (experts, width, d)),
                               ("expert_down", expert_down, (experts, d, width))):
            if a.shape != shape:
                raise ValueError(f"{name} has shape {a.shape}; it must be {shape}")
        shared = [shared_gate, shared_up, shared_down]
        shared_width = 0
        if any(s is not None for s in shared):
            if any(s is None for s in shared):
                raise ValueError("shared_gate, shared_up and shared_down must be given together")
            for name, a in zip(("shared_gate", "shared_up", "shared_down"), shared):
                _contiguous(name, a, wtype, 2)
            shared_width = shared_gate.shape[0]
            for name, a, shape in (("shared_gate", shared_gate, (shared_width, d)),
                                   ("shared_up", shared_up, (shared_width, d)),
                                   ("shared_down", shared_down, (d, shared_width))):
                if a.shape != shape:
                    raise ValueError(f"{name} has shape {a.shape}; it must be {shape}")
        if bias is not None:
            _contiguous("bias", bias, np.float32, 1)
            if bias.shape[0] != experts:
                raise ValueError(f"bias has {bias.shape[0]} entries; it must have experts = {experts}")
        if router == "grouped_sigmoid" and bias is None:
            bias = np.zeros(experts, dtype=np.float32)
        self._keep = (router_weight, expert_gate, expert_up, expert_down, bias, *shared)
        self.d, self.experts = d, experts

        def address(a):
            return _VOIDP(a.ctypes.data) if a is not None else None

        self._params = LayerParams(
            d=d, experts=experts, ffn_width=width, shared_width=shared_width, router=self._ROUTERS[router],
            top_k=top_k, renormalize=renormalize, capacity_factor=capacity_factor, num_groups=num_groups,
            topk_group=topk_group, routed_scaling_factor=routed_scaling_factor,
            bias=ptr(bias) if bias is not None else None, router_weight=ptr(router_weight),
            weight_dtype=DTYPE_F32 if weight_dtype == "f32" else DTYPE_BF16,
            expert_gate=address(expert_gate), expert_up=address(expert_up), expert_down=address(expert_down),
            shared_gate=address(shared_gate), shared_up=address(shared_up), shared_down=address(shared_down),
        )

    def __call__(self, x, out=None):
        """Returns the layer output for float32 `x` (tokens x d, C-contiguous)."""
        _contiguous("x", x, np.float32, 2)
        if x.shape[1] != self.d:
            raise ValueError(f"x has {x.shape[1]} columns; it must have d = {self.d}")
        if out is None:
            out = np.empty_like(x)
        _contiguous("out", out, np.float32, 2)
        if out.shape != x.shape:
            raise ValueError(f"out has shape {out.shape}; it must match x's {x.shape}")
        if not out.flags.writeable:
            raise ValueError("out is read-only")
        check(_layer(ctypes.byref(self._params), ptr(x), x.shape[0], ptr(out)))
        return out
