//! C exports of the mixture-of-experts family.
//!
//! Ids are `int32_t` with -1 marking a choice dropped by a capacity limit;
//! slot maps, counts and offsets are `int64_t`, with -1 marking a padding
//! slot or a dropped choice.

use super::guard;
use crate::dtype::Dtype;
use crate::error::{Error, Result, Status};
use crate::moe::{self, CapacityRouting, FfnWeights, GroupedRouting, LayoutDims, MoeLayer, Router, Weights};
use crate::validate;
use std::ffi::c_void;
use std::mem::size_of;
use std::slice;

/// Routing rule codes of `mlak_moe_layer_params.router`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoeRouterKind {
    /// Softmax, then the top k (`top_k`, `renormalize`).
    SoftmaxTopK = 0,
    /// Top-1 with a capacity limit (`capacity_factor`).
    Top1Capacity = 1,
    /// DeepSeek-V3 sigmoid routing with groups (`bias`, `num_groups`,
    /// `topk_group`, `top_k`, `routed_scaling_factor`).
    GroupedSigmoid = 2,
}

/// Parameters of the DeepSeek-V3 group-limited sigmoid router.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MoeGroupedParams {
    /// Number of expert groups; it divides the expert count.
    pub num_groups: i64,
    /// Groups kept per token, in 1 ..= num_groups.
    pub topk_group: i64,
    /// Experts chosen per token, at most topk_group * experts / num_groups.
    pub top_k: i64,
    /// Factor applied to the normalized weights; finite.
    pub routed_scaling_factor: f32,
}

/// A mixture-of-experts FFN layer for `mlak_moe_layer_f32`. Expert weights
/// use the PyTorch `Linear` layout stacked over experts: `expert_gate` and
/// `expert_up` are `experts × ffn_width × d`, `expert_down` is
/// `experts × d × ffn_width`; the shared FFN likewise with one expert of
/// `shared_width`. All weight pointers hold `weight_dtype` elements.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MoeLayerParams {
    /// Model width.
    pub d: i64,
    /// Number of routed experts, >= 1.
    pub experts: i64,
    /// Hidden width of each routed expert.
    pub ffn_width: i64,
    /// Hidden width of the shared FFN; 0 for no shared experts.
    pub shared_width: i64,
    /// A `mlak_moe_router_kind` code.
    pub router: u32,
    /// Experts per token for the top-k and grouped routers.
    pub top_k: i64,
    /// Top-k router: divide the chosen probabilities by their sum.
    pub renormalize: bool,
    /// Capacity router: capacity = min(tokens, ceil(factor * tokens / experts)).
    pub capacity_factor: f32,
    /// Grouped router: number of expert groups.
    pub num_groups: i64,
    /// Grouped router: groups kept per token.
    pub topk_group: i64,
    /// Grouped router: factor applied to the normalized weights.
    pub routed_scaling_factor: f32,
    /// Grouped router: `experts` selection biases; NULL otherwise.
    pub bias: *const f32,
    /// Router projection, `experts × d` f32; logits = x · router_weightᵀ.
    pub router_weight: *const f32,
    /// A `mlak_dtype` code: MLAK_DTYPE_F32 or MLAK_DTYPE_BF16.
    pub weight_dtype: u32,
    /// Routed gate projections, `experts × ffn_width × d`.
    pub expert_gate: *const c_void,
    /// Routed up projections, `experts × ffn_width × d`.
    pub expert_up: *const c_void,
    /// Routed down projections, `experts × d × ffn_width`.
    pub expert_down: *const c_void,
    /// Shared gate projection, `shared_width × d`; NULL when shared_width is 0.
    pub shared_gate: *const c_void,
    /// Shared up projection, `shared_width × d`; NULL when shared_width is 0.
    pub shared_up: *const c_void,
    /// Shared down projection, `d × shared_width`; NULL when shared_width is 0.
    pub shared_down: *const c_void,
}

fn bytes<T>(p: *const T, elems: usize) -> (*const u8, usize) {
    (p.cast(), elems * size_of::<T>())
}

fn elems(name: &str, a: usize, b: usize) -> Result<usize> {
    a.checked_mul(b)
        .filter(|&n| n.checked_mul(8).is_some_and(|bytes| bytes <= isize::MAX as usize))
        .ok_or_else(|| Error::invalid(format!("{name}: {a} times {b} elements overflow")))
}

/// Builds a shared slice from a validated pointer (NULL allowed when empty).
///
/// # Safety
///
/// `p` addresses `n` readable elements when `n > 0`.
unsafe fn view<'a, T>(p: *const T, n: usize) -> &'a [T] {
    if n == 0 {
        return &[];
    }
    // SAFETY: the caller validated `p` for n elements.
    unsafe { slice::from_raw_parts(p, n) }
}

/// Builds a mutable slice from a validated pointer (NULL allowed when empty).
///
/// # Safety
///
/// `p` addresses `n` writable elements when `n > 0`, used by no other slice.
unsafe fn view_mut<'a, T>(p: *mut T, n: usize) -> &'a mut [T] {
    if n == 0 {
        return &mut [];
    }
    // SAFETY: the caller validated `p` for n elements.
    unsafe { slice::from_raw_parts_mut(p, n) }
}

/// Validates the logits and returns (tokens, experts, tokens · experts).
fn logits_arg(logits: *const f32, tokens: i64, experts: i64) -> Result<(usize, usize, usize)> {
    let t = validate::dim("tokens", tokens)?;
    let e = validate::dim("experts", experts)?;
    let n = elems("logits", t, e)?;
    validate::pointer("logits", logits, n)?;
    Ok((t, e, n))
}

/// Routes each token to its `k` most probable experts: `ids[t*k + j]` and
/// `weights[t*k + j]` (`tokens × k`) receive the chosen experts, best
/// first, and their softmax probabilities, divided by the sum over the
/// chosen when `renormalize` (a sum of 0 gives 0). `probs`, if not NULL,
/// receives the `tokens × experts` probabilities.
///
/// Selection: larger logit first, equal logits to the lower expert index.
/// A NaN logit ranks as -inf and has probability 0, so ids are distinct
/// and in range even for an all-NaN row. +inf logits share the probability
/// evenly. `k` must be in 1 ..= experts.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn mlak_moe_route_softmax_topk_f32(
    logits: *const f32,
    tokens: i64,
    experts: i64,
    k: i64,
    renormalize: bool,
    ids: *mut i32,
    weights: *mut f32,
    probs: *mut f32,
) -> Status {
    guard(|| {
        let (t, e, n) = logits_arg(logits, tokens, experts)?;
        let k = validate::dim("k", k)?;
        if k == 0 || k > e {
            return Err(Error::invalid(format!("k = {k} is invalid; it must be in 1 ..= experts = {e}")));
        }
        let choices = elems("ids", t, k)?;
        validate::pointer("ids", ids, choices)?;
        validate::pointer("weights", weights, choices)?;
        validate::no_overlap("weights", bytes(weights, choices), "ids", bytes(ids, choices), false)?;
        validate::no_overlap("weights", bytes(weights, choices), "logits", bytes(logits, n), false)?;
        validate::no_overlap("ids", bytes(ids, choices), "logits", bytes(logits, n), false)?;
        if !probs.is_null() {
            validate::pointer("probs", probs, n)?;
            validate::no_overlap("probs", bytes(probs, n), "logits", bytes(logits, n), false)?;
            validate::no_overlap("probs", bytes(probs, n), "weights", bytes(weights, choices), false)?;
            validate::no_overlap("probs", bytes(probs, n), "ids", bytes(ids, choices), false)?;
        }
        // SAFETY: every pointer was validated for its element count and the
        // outputs overlap neither each other nor the input.
        unsafe {
            let probs = (!probs.is_null()).then(|| view_mut(probs, n));
            moe::softmax_topk_rows(view(logits, n), t, e, k, renormalize, view_mut(ids, choices), view_mut(weights, choices), probs)
        }
    })
}

/// Routes each token to its most probable expert (Switch style) with at
/// most `capacity = min(tokens, ceil(capacity_factor * tokens / experts))`
/// tokens per expert, accepted in token order. `ids[t]` and `weights[t]`
/// receive the expert and its probability, or -1 and 0 for a dropped
/// token; `dropped` (room for `tokens` entries) receives the dropped token
/// indices in order. `capacity` and `num_dropped`, if not NULL, receive
/// the capacity and the number of dropped tokens; `probs`, if not NULL,
/// the probabilities. NaN logits rank as -inf. `capacity_factor` must be
/// finite and > 0.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn mlak_moe_route_top1_capacity_f32(
    logits: *const f32,
    tokens: i64,
    experts: i64,
    capacity_factor: f32,
    ids: *mut i32,
    weights: *mut f32,
    dropped: *mut i64,
    probs: *mut f32,
    capacity: *mut i64,
    num_dropped: *mut i64,
) -> Status {
    guard(|| {
        let (t, e, n) = logits_arg(logits, tokens, experts)?;
        if e == 0 {
            return Err(Error::invalid("experts = 0 is invalid; it must be >= 1"));
        }
        moe_capacity_check(capacity_factor, t, e)?;
        validate::pointer("ids", ids, t)?;
        validate::pointer("weights", weights, t)?;
        validate::pointer("dropped", dropped, t)?;
        let outs = [("ids", bytes(ids, t)), ("weights", bytes(weights, t)), ("dropped", bytes(dropped, t))];
        for (i, (name, range)) in outs.iter().enumerate() {
            validate::no_overlap(name, *range, "logits", bytes(logits, n), false)?;
            for (other, other_range) in &outs[i + 1..] {
                validate::no_overlap(name, *range, other, *other_range, false)?;
            }
        }
        if !probs.is_null() {
            validate::pointer("probs", probs, n)?;
            validate::no_overlap("probs", bytes(probs, n), "logits", bytes(logits, n), false)?;
        }
        for (name, p) in [("capacity", capacity), ("num_dropped", num_dropped)] {
            if !p.is_null() {
                validate::pointer(name, p, 1)?;
            }
        }
        // SAFETY: every pointer was validated for its element count and the
        // outputs do not overlap the input or each other.
        let r: CapacityRouting = unsafe {
            let probs = (!probs.is_null()).then(|| view_mut(probs, n));
            moe::top1_capacity_rows(
                view(logits, n),
                t,
                e,
                capacity_factor,
                view_mut(ids, t),
                view_mut(weights, t),
                view_mut(dropped, t),
                probs,
            )?
        };
        // SAFETY: checked non-NULL and aligned above.
        unsafe {
            if !capacity.is_null() {
                capacity.write(r.capacity as i64);
            }
            if !num_dropped.is_null() {
                num_dropped.write(r.dropped as i64);
            }
        }
        Ok(())
    })
}

fn moe_capacity_check(factor: f32, tokens: usize, experts: usize) -> Result<()> {
    crate::moe::router_capacity(factor, tokens, experts).map(|_| ())
}

/// Validates C grouped-routing parameters into the Rust form.
fn grouped_params<'a>(p: &MoeGroupedParams, bias: *const f32, experts: usize) -> Result<GroupedRouting<'a>> {
    let groups = validate::dim("params.num_groups", p.num_groups)?;
    let topk_group = validate::dim("params.topk_group", p.topk_group)?;
    let k = validate::dim("params.top_k", p.top_k)?;
    validate::pointer("bias", bias, experts)?;
    // SAFETY: bias was validated for `experts` elements.
    let bias = unsafe { view(bias, experts) };
    let routing = GroupedRouting { bias, groups, topk_group, k, routed_scaling_factor: p.routed_scaling_factor };
    routing.validate(experts)?;
    Ok(routing)
}

/// Routes each token with the DeepSeek-V3 rule: scores = sigmoid(logits);
/// `bias` (`experts` finite values) is added for selection only; the
/// experts form `num_groups` groups scored by the sum of their two best
/// biased scores; the `topk_group` best groups are kept and the `top_k`
/// best experts by biased score chosen among them (never from a dropped
/// group, even when kept groups score below it). `weights` receive the
/// unbiased scores of the chosen, divided by their sum, times
/// `routed_scaling_factor`. `ids` and `weights` are `tokens × top_k`;
/// `scores`, if not NULL, receives the `tokens × experts` sigmoid scores.
///
/// Ties go to the lower index (group or expert). A NaN logit ranks as
/// -inf and weighs 0; ids stay distinct and in range for any row.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn mlak_moe_route_grouped_sigmoid_f32(
    logits: *const f32,
    tokens: i64,
    experts: i64,
    params: *const MoeGroupedParams,
    bias: *const f32,
    ids: *mut i32,
    weights: *mut f32,
    scores: *mut f32,
) -> Status {
    guard(|| {
        let (t, e, n) = logits_arg(logits, tokens, experts)?;
        if params.is_null() {
            return Err(Error::new(Status::NullPointer, "params is NULL"));
        }
        validate::pointer("params", params, 1)?;
        // SAFETY: checked non-NULL and aligned; the caller owns the struct.
        let p = unsafe { params.read() };
        let routing = grouped_params(&p, bias, e)?;
        let choices = elems("ids", t, routing.k)?;
        validate::pointer("ids", ids, choices)?;
        validate::pointer("weights", weights, choices)?;
        validate::no_overlap("weights", bytes(weights, choices), "ids", bytes(ids, choices), false)?;
        validate::no_overlap("weights", bytes(weights, choices), "logits", bytes(logits, n), false)?;
        validate::no_overlap("ids", bytes(ids, choices), "logits", bytes(logits, n), false)?;
        if !scores.is_null() {
            validate::pointer("scores", scores, n)?;
            validate::no_overlap("scores", bytes(scores, n), "logits", bytes(logits, n), false)?;
        }
        // SAFETY: every pointer was validated for its element count and the
        // outputs do not overlap the input or each other.
        unsafe {
            let scores = (!scores.is_null()).then(|| view_mut(scores, n));
            moe::grouped_rows(view(logits, n), t, e, &routing, view_mut(ids, choices), view_mut(weights, choices), scores)
        }
    })
}

/// Computes load statistics of `tokens × k` ids (negative ids skipped)
/// and `tokens × experts` router probabilities: `counts[e]`, the choices
/// routed to expert e; `mean_probs[e]`, its mean probability; and, if
/// `aux_loss` is not NULL, the Switch auxiliary loss E · Σ f_e · P_e with
/// f_e = counts[e] / Σ counts (1 when uniform, 0 when nothing is routed).
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn mlak_moe_load_stats_f32(
    ids: *const i32,
    probs: *const f32,
    tokens: i64,
    experts: i64,
    k: i64,
    counts: *mut i64,
    mean_probs: *mut f32,
    aux_loss: *mut f32,
) -> Status {
    guard(|| {
        let (t, e, n) = logits_arg(probs, tokens, experts)?;
        let k = validate::dim("k", k)?;
        let choices = elems("ids", t, k)?;
        validate::pointer("ids", ids, choices)?;
        validate::pointer("counts", counts, e)?;
        validate::pointer("mean_probs", mean_probs, e)?;
        validate::no_overlap("counts", bytes(counts, e), "mean_probs", bytes(mean_probs, e), false)?;
        if !aux_loss.is_null() {
            validate::pointer("aux_loss", aux_loss, 1)?;
        }
        // SAFETY: every pointer was validated for its element count; the
        // two outputs do not overlap.
        let stats = unsafe {
            let (ids, probs) = (view(ids, choices), view(probs, n));
            let mut local_counts = vec![0i64; e];
            let mut local_mean = vec![0.0f32; e];
            let s = moe::load_balance_stats(ids, probs, t, e, &mut local_counts, &mut local_mean)?;
            view_mut(counts, e).copy_from_slice(&local_counts);
            view_mut(mean_probs, e).copy_from_slice(&local_mean);
            s
        };
        if !aux_loss.is_null() {
            // SAFETY: checked non-NULL and aligned above.
            unsafe { aux_loss.write(stats.aux_loss) };
        }
        Ok(())
    })
}

/// Computes the router z-loss, the mean over tokens of logsumexp(row)² of
/// `tokens × experts` logits, into `*out` (f64 accumulation; NaN logits
/// count as -inf; an all -inf row gives +inf; no tokens gives 0).
#[no_mangle]
pub extern "C" fn mlak_moe_router_z_loss_f32(logits: *const f32, tokens: i64, experts: i64, out: *mut f32) -> Status {
    guard(|| {
        let (t, e, n) = logits_arg(logits, tokens, experts)?;
        if out.is_null() {
            return Err(Error::new(Status::NullPointer, "out is NULL"));
        }
        validate::pointer("out", out, 1)?;
        // SAFETY: logits holds n values; out was checked.
        unsafe { out.write(moe::router_z_loss(view(logits, n), t, e)?) };
        Ok(())
    })
}

/// Applies the auxiliary-loss-free balancing update in place:
/// `bias[e] += step * sign(mean(counts) - counts[e])` for `experts`
/// entries. `step` must be finite.
#[no_mangle]
pub extern "C" fn mlak_moe_update_bias_f32(bias: *mut f32, counts: *const i64, experts: i64, step: f32) -> Status {
    guard(|| {
        let e = validate::dim("experts", experts)?;
        validate::pointer("bias", bias, e)?;
        validate::pointer("counts", counts, e)?;
        validate::no_overlap("bias", bytes(bias, e), "counts", bytes(counts, e), false)?;
        // SAFETY: both pointers were validated for `experts` elements and
        // do not overlap.
        unsafe { moe::update_expert_bias(view_mut(bias, e), view(counts, e), e, step) }
    })
}

/// Builds the expert-contiguous layout of `tokens × k` ids (negative =
/// dropped) over `experts` with a stable counting sort, each expert's
/// segment padded to a multiple of `block` (1 for none):
/// - `counts[e]`: choices routed to expert e (`experts` entries);
/// - `offsets[e]`: start of expert e's segment (`experts + 1` entries;
///   the last is the slot count);
/// - `token_slot[t*k + j]`: slot of choice j of token t, -1 if dropped;
/// - `slot_token[s]`: token in slot s, -1 for padding. Its capacity is
///   `slot_capacity`; tokens*k + min(experts, tokens*k)*(block - 1) always
///   suffices.
///
/// Within a segment, tokens keep their order. `num_slots`, if not NULL,
/// receives the slot count. Ids at or above `experts` are rejected.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn mlak_moe_layout(
    ids: *const i32,
    tokens: i64,
    k: i64,
    experts: i64,
    block: i64,
    counts: *mut i64,
    offsets: *mut i64,
    token_slot: *mut i64,
    slot_token: *mut i64,
    slot_capacity: i64,
    num_slots: *mut i64,
) -> Status {
    guard(|| {
        let dims = LayoutDims {
            tokens: validate::dim("tokens", tokens)?,
            k: validate::dim("k", k)?,
            experts: validate::dim("experts", experts)?,
            block: validate::dim("block", block)?,
        };
        let choices = dims.choices()?;
        let e = dims.experts;
        let cap = validate::dim("slot_capacity", slot_capacity)?;
        elems("slot_token", cap, 1)?;
        validate::pointer("ids", ids, choices)?;
        validate::pointer("counts", counts, e)?;
        validate::pointer("offsets", offsets, e + 1)?;
        validate::pointer("token_slot", token_slot, choices)?;
        validate::pointer("slot_token", slot_token, cap)?;
        let outs = [
            ("counts", bytes(counts, e)),
            ("offsets", bytes(offsets, e + 1)),
            ("token_slot", bytes(token_slot, choices)),
            ("slot_token", bytes(slot_token, cap)),
        ];
        for (i, (name, range)) in outs.iter().enumerate() {
            validate::no_overlap(name, *range, "ids", bytes(ids, choices), false)?;
            for (other, other_range) in &outs[i + 1..] {
                validate::no_overlap(name, *range, other, *other_range, false)?;
            }
        }
        if !num_slots.is_null() {
            validate::pointer("num_slots", num_slots, 1)?;
        }
        // SAFETY: every pointer was validated for its element count and the
        // outputs overlap neither each other nor the input.
        let used = unsafe {
            moe::layout_into(
                view(ids, choices),
                dims,
                view_mut(counts, e),
                view_mut(offsets, e + 1),
                view_mut(token_slot, choices),
                view_mut(slot_token, cap),
            )?
        };
        if !num_slots.is_null() {
            // SAFETY: checked non-NULL and aligned above.
            unsafe { num_slots.write(used as i64) };
        }
        Ok(())
    })
}

/// Computes the expert-parallel all-to-all send counts when `experts` are
/// split contiguously over `ranks` ranks: `send_counts[r]` is the sum of
/// `counts` over experts r*E/ranks .. (r+1)*E/ranks. `ranks` must divide
/// `experts`.
#[no_mangle]
pub extern "C" fn mlak_moe_rank_send_counts(
    counts: *const i64,
    experts: i64,
    ranks: i64,
    send_counts: *mut i64,
) -> Status {
    guard(|| {
        let e = validate::dim("experts", experts)?;
        let r = validate::dim("ranks", ranks)?;
        validate::pointer("counts", counts, e)?;
        validate::pointer("send_counts", send_counts, r)?;
        validate::no_overlap("send_counts", bytes(send_counts, r), "counts", bytes(counts, e), false)?;
        // SAFETY: both pointers were validated and do not overlap.
        unsafe { moe::rank_send_counts_into(view(counts, e), e, r, view_mut(send_counts, r)) }
    })
}

/// Gathers token rows into expert-contiguous order: row s of `dst`
/// (`num_slots` rows, `dst_row_stride` apart) receives row
/// `slot_token[s]` of `src` (`tokens` rows of `d`, `src_row_stride`
/// apart), copied bit for bit; a slot of -1 is padding and is zeroed.
/// `dtype` is a `mlak_dtype` code (f32, f16 or bf16); strides are in
/// elements. Entries of `slot_token` at or above `tokens` are rejected.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn mlak_moe_gather(
    dtype: u32,
    src: *const c_void,
    src_row_stride: i64,
    tokens: i64,
    d: i64,
    slot_token: *const i64,
    num_slots: i64,
    dst: *mut c_void,
    dst_row_stride: i64,
) -> Status {
    guard(|| {
        let dt = Dtype::from_code(dtype)
            .ok_or_else(|| Error::invalid(format!("dtype = {dtype} is not a known mlak_dtype code")))?;
        let size = dt.size();
        let t = validate::dim("tokens", tokens)?;
        let d = validate::dim("d", d)?;
        let slots = validate::dim("num_slots", num_slots)?;
        let ss = validate::row_stride("src_row_stride", src_row_stride, d)?;
        let ds = validate::row_stride("dst_row_stride", dst_row_stride, d)?;
        let src_elems = validate::span("src", t, d, ss, size)?;
        let dst_elems = validate::span("dst", slots, d, ds, size)?;
        elems("slot_token", slots, 1)?;
        validate::pointer("slot_token", slot_token, slots)?;
        check_raw_pointer("src", src, src_elems, size)?;
        check_raw_pointer("dst", dst, dst_elems, size)?;
        let map = (slot_token.cast::<u8>(), slots * 8);
        let dst_bytes = (dst.cast_const().cast::<u8>(), dst_elems * size);
        validate::no_overlap("dst", dst_bytes, "src", (src.cast(), src_elems * size), false)?;
        validate::no_overlap("dst", dst_bytes, "slot_token", map, false)?;
        // SAFETY: slot_token was validated for num_slots entries.
        let map = unsafe { view(slot_token, slots) };
        if let Some(s) = map.iter().position(|&v| v >= t as i64) {
            return Err(Error::invalid(format!("slot_token[{s}] = {} is out of range; tokens = {t}", map[s])));
        }
        if d == 0 {
            return Ok(());
        }
        // SAFETY: every entry names a token row inside src or is padding;
        // dst covers num_slots rows and overlaps neither input.
        unsafe { moe::gather_raw(src.cast(), ss * size, map, dst.cast(), ds * size, d * size) }
    })
}

fn check_raw_pointer(name: &str, p: *const c_void, elems: usize, size: usize) -> Result<()> {
    match size {
        4 => validate::pointer(name, p.cast::<f32>(), elems),
        _ => validate::pointer(name, p.cast::<u16>(), elems),
    }
}

/// Combines expert outputs back into token order: for each token t,
/// `out[t, :] = Σ_j weights[t*k + j] * y[token_slot[t*k + j], :]`, or
/// `+=` when `accumulate`. `y` holds `num_slots` rows of `d` floats
/// (`y_row_stride` apart), `out` `tokens` rows (`out_row_stride` apart);
/// `token_slot` and `weights` are `tokens × k`. A slot of -1 is a dropped
/// choice and adds nothing; slots at or above `num_slots` are rejected.
///
/// Deterministic: each token's sum runs in choice order with one FMA per
/// term and no atomics, so the result has the same bits for any thread
/// count. A weight of 0 still multiplies its row (NaN there propagates).
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn mlak_moe_combine_f32(
    y: *const f32,
    y_row_stride: i64,
    num_slots: i64,
    d: i64,
    token_slot: *const i64,
    weights: *const f32,
    tokens: i64,
    k: i64,
    out: *mut f32,
    out_row_stride: i64,
    accumulate: bool,
) -> Status {
    guard(|| {
        let slots = validate::dim("num_slots", num_slots)?;
        let d = validate::dim("d", d)?;
        let t = validate::dim("tokens", tokens)?;
        let k = validate::dim("k", k)?;
        let ys = validate::row_stride("y_row_stride", y_row_stride, d)?;
        let os = validate::row_stride("out_row_stride", out_row_stride, d)?;
        let y_elems = validate::span("y", slots, d, ys, 4)?;
        let out_elems = validate::span("out", t, d, os, 4)?;
        let choices = elems("token_slot", t, k)?;
        validate::pointer("y", y, y_elems)?;
        validate::pointer("out", out, out_elems)?;
        validate::pointer("token_slot", token_slot, choices)?;
        validate::pointer("weights", weights, choices)?;
        let out_bytes = bytes(out, out_elems);
        validate::no_overlap("out", out_bytes, "y", bytes(y, y_elems), false)?;
        validate::no_overlap("out", out_bytes, "token_slot", bytes(token_slot, choices), false)?;
        validate::no_overlap("out", out_bytes, "weights", bytes(weights, choices), false)?;
        // SAFETY: token_slot was validated for tokens * k entries.
        let map = unsafe { view(token_slot, choices) };
        if let Some(i) = map.iter().position(|&s| s >= slots as i64) {
            return Err(Error::invalid(format!("token_slot[{i}] = {} is out of range; num_slots = {slots}", map[i])));
        }
        if d == 0 || t == 0 {
            return Ok(());
        }
        if k == 0 {
            if !accumulate {
                for r in 0..t {
                    // SAFETY: out covers t rows of d at stride os.
                    unsafe { std::ptr::write_bytes(out.add(r * os), 0, d) };
                }
            }
            return Ok(());
        }
        // SAFETY: every slot names a row inside y or is dropped; out covers
        // its rows and overlaps no input.
        unsafe { moe::combine_raw(y, ys, map, weights, k, out, os, d, accumulate) }
    })
}

/// Weights of one FFN as seen through the C parameters.
///
/// # Safety
///
/// The pointers address `per_expert_in * experts` (gate, up) and the same
/// count (down) elements of `dtype`, validated by the caller.
unsafe fn ffn_view<'a>(
    dtype: Dtype,
    gate: *const c_void,
    up: *const c_void,
    down: *const c_void,
    n: usize,
    width: usize,
) -> FfnWeights<'a> {
    // SAFETY: forwarded contract.
    let w = |p: *const c_void| unsafe {
        match dtype {
            Dtype::Bf16 => Weights::Bf16(view(p.cast::<half::bf16>(), n)),
            _ => Weights::F32(view(p.cast::<f32>(), n)),
        }
    };
    FfnWeights { gate: w(gate), up: w(up), down: w(down), width }
}

/// Computes a mixture-of-experts FFN layer: logits = x · router_weightᵀ,
/// the routing rule of `params->router`, a SwiGLU FFN
/// (`down · (silu(gate · x) ⊙ (up · x))`) per expert over its tokens
/// (experts without tokens cost nothing), the weighted combine, plus the
/// shared FFN with weight 1 when `shared_width > 0`. `x` and `out` are
/// `tokens × d` contiguous floats and must not overlap. A token dropped by
/// the capacity router gets only the shared output (or 0). Weights are
/// `weight_dtype` (f32 or bf16); see `mlak_moe_layer_params` for layouts.
#[no_mangle]
pub extern "C" fn mlak_moe_layer_f32(
    params: *const MoeLayerParams,
    x: *const f32,
    tokens: i64,
    out: *mut f32,
) -> Status {
    guard(|| {
        if params.is_null() {
            return Err(Error::new(Status::NullPointer, "params is NULL"));
        }
        validate::pointer("params", params, 1)?;
        // SAFETY: checked non-NULL and aligned; the caller owns the struct.
        let p = unsafe { params.read() };
        let d = validate::dim("params.d", p.d)?;
        let e = validate::dim("params.experts", p.experts)?;
        let f = validate::dim("params.ffn_width", p.ffn_width)?;
        let fs = validate::dim("params.shared_width", p.shared_width)?;
        let t = validate::dim("tokens", tokens)?;
        let dtype = match Dtype::from_code(p.weight_dtype) {
            Some(dt @ (Dtype::F32 | Dtype::Bf16)) => dt,
            _ => {
                return Err(Error::invalid(format!(
                    "params.weight_dtype = {} is invalid; it must be MLAK_DTYPE_F32 or MLAK_DTYPE_BF16",
                    p.weight_dtype
                )))
            }
        };
        let size = dtype.size();
        let xe = elems("x", t, d)?;
        validate::pointer("x", x, xe)?;
        validate::pointer("out", out, xe)?;
        validate::no_overlap("out", bytes(out, xe), "x", bytes(x, xe), false)?;
        let re = elems("params.router_weight", e, d)?;
        validate::pointer("params.router_weight", p.router_weight, re)?;
        let expert_elems = elems("params.expert_gate", elems("params.expert_gate", f, d)?, e)?;
        let shared_elems = elems("params.shared_gate", fs, d)?;
        let out_bytes = bytes(out, xe);
        validate::no_overlap("out", out_bytes, "params.router_weight", bytes(p.router_weight, re), false)?;
        let weights = [
            ("params.expert_gate", p.expert_gate, expert_elems),
            ("params.expert_up", p.expert_up, expert_elems),
            ("params.expert_down", p.expert_down, expert_elems),
            ("params.shared_gate", p.shared_gate, shared_elems),
            ("params.shared_up", p.shared_up, shared_elems),
            ("params.shared_down", p.shared_down, shared_elems),
        ];
        for (name, ptr, n) in weights {
            check_raw_pointer(name, ptr, n, size)?;
            validate::no_overlap("out", out_bytes, name, (ptr.cast(), n * size), false)?;
        }
        let kind = p.router;
        let router = match kind {
            0 => Router::SoftmaxTopK { k: validate::dim("params.top_k", p.top_k)?, renormalize: p.renormalize },
            1 => Router::Top1Capacity { capacity_factor: p.capacity_factor },
            2 => {
                let g = MoeGroupedParams {
                    num_groups: p.num_groups,
                    topk_group: p.topk_group,
                    top_k: p.top_k,
                    routed_scaling_factor: p.routed_scaling_factor,
                };
                Router::GroupedSigmoid(grouped_params(&g, p.bias, e)?)
            }
            _ => {
                return Err(Error::invalid(format!(
                    "params.router = {kind} is not a mlak_moe_router_kind code (0, 1 or 2)"
                )))
            }
        };
        // SAFETY: every pointer was validated for its element count; x and
        // out do not overlap, and out is written only through `out`.
        unsafe {
            let layer = MoeLayer {
                d,
                experts: e,
                router_weight: view(p.router_weight, re),
                router,
                expert_ffn: ffn_view(dtype, p.expert_gate, p.expert_up, p.expert_down, expert_elems, f),
                shared_ffn: (fs > 0)
                    .then(|| ffn_view(dtype, p.shared_gate, p.shared_up, p.shared_down, shared_elems, fs)),
            };
            moe::moe_layer(&layer, view(x, xe), t, view_mut(out, xe))
        }
    })
}
