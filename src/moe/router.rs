//! Routers over f32 logits and the load-balancing statistics.
//!
//! Selection rule shared by every router: a larger score wins and equal
//! scores go to the lower expert index. A NaN logit selects like -inf, so
//! it is never chosen over a finite score, and the chosen ids are distinct
//! and in range even for a row that is all NaN (it takes experts 0, 1, ...).
//! A NaN logit gets probability (or sigmoid score) 0.

use crate::dispatch::kernels;
use crate::error::{Error, Result};
use crate::validate;

/// Router choice of the fused layer.
#[derive(Clone, Copy, Debug)]
pub enum Router<'a> {
    /// Softmax over all experts, then the top k; see [`route_softmax_topk`].
    SoftmaxTopK { k: usize, renormalize: bool },
    /// Top-1 with a capacity limit; see [`route_top1_capacity`].
    Top1Capacity { capacity_factor: f32 },
    /// Sigmoid scores with group-limited selection; see
    /// [`route_grouped_sigmoid`].
    GroupedSigmoid(GroupedRouting<'a>),
}

impl Router<'_> {
    /// Number of experts each token is sent to.
    pub fn k(&self) -> usize {
        match self {
            Router::SoftmaxTopK { k, .. } => *k,
            Router::Top1Capacity { .. } => 1,
            Router::GroupedSigmoid(g) => g.k,
        }
    }
}

/// Parameters of the DeepSeek-V3 group-limited sigmoid router.
#[derive(Clone, Copy, Debug)]
pub struct GroupedRouting<'a> {
    /// Per-expert bias added to the scores for selection only (`experts`
    /// finite values).
    pub bias: &'a [f32],
    /// Number of expert groups G; it divides the expert count.
    pub groups: usize,
    /// Number of groups kept per token, in `1 ..= groups`.
    pub topk_group: usize,
    /// Experts chosen per token, at most `topk_group · experts / groups`.
    pub k: usize,
    /// Factor applied to the normalized weights.
    pub routed_scaling_factor: f32,
}

/// Outcome of the capacity router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapacityRouting {
    /// Tokens each expert accepts: `min(tokens, ceil(capacity_factor ·
    /// tokens / experts))`.
    pub capacity: usize,
    /// Number of dropped tokens, listed first in the `dropped` output.
    pub dropped: usize,
}

/// Load statistics of one routing decision.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoadStats {
    /// Switch auxiliary loss `E · Σ_i f_i · P_i`, where `f_i` is expert i's
    /// share of all routed (token, choice) pairs and `P_i` its mean router
    /// probability. 1 for a perfectly uniform router; 0 when nothing is
    /// routed.
    pub aux_loss: f32,
}

/// Returns the selection key of a score: NaN becomes -inf.
#[inline]
fn key(v: f32) -> f32 {
    if v.is_nan() {
        f32::NEG_INFINITY
    } else {
        v
    }
}

/// Writes into `ids` the indices of the `ids.len()` best keys among the
/// experts for which `allowed` holds, best first, by the module's rule.
/// The caller guarantees that at least `ids.len()` experts are allowed.
fn select_top(keys: &[f32], allowed: impl Fn(usize) -> bool, ids: &mut [i32]) {
    let k = ids.len();
    let mut best: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
    for (e, &v) in keys.iter().enumerate() {
        if !allowed(e) {
            continue;
        }
        let v = key(v);
        // Scanning in increasing index, a later expert only passes entries
        // with a strictly smaller key.
        let pos = best.iter().position(|&(b, _)| v > b).unwrap_or(best.len());
        if pos < k {
            best.insert(pos, (v, e));
            best.truncate(k);
        }
    }
    debug_assert_eq!(best.len(), k);
    for (id, (_, e)) in ids.iter_mut().zip(best) {
        *id = e as i32;
    }
}

/// Computes the router probabilities of one row into `probs`: softmax over
/// the logits with NaN treated as -inf. A row with +inf entries splits the
/// probability evenly between them; a row with no finite or +inf entry
/// gets all zeros.
fn row_probs(softmax: unsafe fn(*const f32, *mut f32, usize, f32), logits: &[f32], probs: &mut [f32]) {
    let infinite = logits.iter().filter(|&&v| v == f32::INFINITY).count();
    if infinite > 0 {
        for (p, &v) in probs.iter_mut().zip(logits) {
            *p = if v == f32::INFINITY { 1.0 / infinite as f32 } else { 0.0 };
        }
        return;
    }
    for (p, &v) in probs.iter_mut().zip(logits) {
        *p = key(v);
    }
    // SAFETY: `probs` holds the row; the kernel allows in-place use.
    unsafe { softmax(probs.as_ptr(), probs.as_mut_ptr(), probs.len(), 1.0) };
}

/// Validates the logits shape and returns `tokens · experts`.
fn check_logits(logits: &[f32], tokens: usize, experts: usize) -> Result<usize> {
    let elems = tokens
        .checked_mul(experts)
        .ok_or_else(|| Error::invalid(format!("tokens = {tokens} times experts = {experts} overflows")))?;
    validate::slice_len("logits", logits.len(), elems)?;
    Ok(elems)
}

fn check_k(k: usize, experts: usize) -> Result<()> {
    if k == 0 || k > experts {
        return Err(Error::invalid(format!("k = {k} is invalid; it must be in 1 ..= experts = {experts}")));
    }
    Ok(())
}

/// Core of [`route_softmax_topk`] on validated slices.
pub(crate) fn softmax_topk_rows(
    logits: &[f32],
    tokens: usize,
    experts: usize,
    k: usize,
    renormalize: bool,
    ids: &mut [i32],
    weights: &mut [f32],
    mut probs: Option<&mut [f32]>,
) -> Result<()> {
    let softmax = kernels()?.softmax.softmax;
    let mut row = vec![0.0f32; experts];
    for t in 0..tokens {
        let x = &logits[t * experts..(t + 1) * experts];
        row_probs(softmax, x, &mut row);
        let (tid, tw) = (&mut ids[t * k..(t + 1) * k], &mut weights[t * k..(t + 1) * k]);
        select_top(x, |_| true, tid);
        for (w, &e) in tw.iter_mut().zip(tid.iter()) {
            *w = row[e as usize];
        }
        if renormalize {
            let sum: f32 = tw.iter().sum();
            for w in tw.iter_mut() {
                *w = if sum > 0.0 { *w / sum } else { 0.0 };
            }
        }
        if let Some(p) = probs.as_deref_mut() {
            p[t * experts..(t + 1) * experts].copy_from_slice(&row);
        }
    }
    Ok(())
}

/// Routes each token to its `k` most probable experts (Mixtral, Qwen and
/// GShard style). `weights[t*k + j]` is the softmax probability of expert
/// `ids[t*k + j]`, divided by the sum over the k chosen when `renormalize`
/// (a sum of 0 gives weights 0). Ids come best first. `probs`, if given,
/// receives the full `tokens × experts` probabilities.
///
/// Errors: `k` outside `1 ..= experts`, or a slice too short.
#[allow(clippy::too_many_arguments)]
pub fn route_softmax_topk(
    logits: &[f32],
    tokens: usize,
    experts: usize,
    k: usize,
    renormalize: bool,
    ids: &mut [i32],
    weights: &mut [f32],
    probs: Option<&mut [f32]>,
) -> Result<()> {
    let elems = check_logits(logits, tokens, experts)?;
    check_k(k, experts)?;
    validate::slice_len("ids", ids.len(), tokens * k)?;
    validate::slice_len("weights", weights.len(), tokens * k)?;
    if let Some(p) = &probs {
        validate::slice_len("probs", p.len(), elems)?;
    }
    softmax_topk_rows(logits, tokens, experts, k, renormalize, ids, weights, probs)
}

/// Returns the expert capacity `min(tokens, ceil(factor · tokens /
/// experts))`.
pub(crate) fn capacity(factor: f32, tokens: usize, experts: usize) -> Result<usize> {
    if !(factor > 0.0 && factor.is_finite()) {
        return Err(Error::invalid(format!("capacity_factor = {factor} is invalid; it must be finite and > 0")));
    }
    let c = (factor as f64 * tokens as f64 / experts.max(1) as f64).ceil();
    Ok(if c >= tokens as f64 { tokens } else { c as usize })
}

/// Core of [`route_top1_capacity`] on validated slices.
#[allow(clippy::too_many_arguments)]
pub(crate) fn top1_capacity_rows(
    logits: &[f32],
    tokens: usize,
    experts: usize,
    capacity_factor: f32,
    ids: &mut [i32],
    weights: &mut [f32],
    dropped: &mut [i64],
    mut probs: Option<&mut [f32]>,
) -> Result<CapacityRouting> {
    let cap = capacity(capacity_factor, tokens, experts)?;
    let softmax = kernels()?.softmax.softmax;
    let mut row = vec![0.0f32; experts];
    let mut load = vec![0usize; experts];
    let mut num_dropped = 0;
    for t in 0..tokens {
        let x = &logits[t * experts..(t + 1) * experts];
        row_probs(softmax, x, &mut row);
        let mut id = [0i32];
        select_top(x, |_| true, &mut id);
        let e = id[0] as usize;
        if load[e] < cap {
            load[e] += 1;
            ids[t] = id[0];
            weights[t] = row[e];
        } else {
            ids[t] = -1;
            weights[t] = 0.0;
            dropped[num_dropped] = t as i64;
            num_dropped += 1;
        }
        if let Some(p) = probs.as_deref_mut() {
            p[t * experts..(t + 1) * experts].copy_from_slice(&row);
        }
    }
    Ok(CapacityRouting { capacity: cap, dropped: num_dropped })
}

/// Routes each token to its most probable expert (Switch style), accepting
/// at most `capacity` tokens per expert in token order. A token over
/// capacity is dropped: its id is -1, its weight 0 and its index is
/// appended to `dropped` (which needs room for `tokens` entries). Kept
/// tokens get the softmax probability of their expert as weight. `probs`,
/// if given, receives the full probabilities.
///
/// Errors: a capacity factor that is not finite and > 0, `experts = 0`
/// with tokens, or a slice too short.
#[allow(clippy::too_many_arguments)]
pub fn route_top1_capacity(
    logits: &[f32],
    tokens: usize,
    experts: usize,
    capacity_factor: f32,
    ids: &mut [i32],
    weights: &mut [f32],
    dropped: &mut [i64],
    probs: Option<&mut [f32]>,
) -> Result<CapacityRouting> {
    let elems = check_logits(logits, tokens, experts)?;
    check_k(1, experts)?;
    validate::slice_len("ids", ids.len(), tokens)?;
    validate::slice_len("weights", weights.len(), tokens)?;
    validate::slice_len("dropped", dropped.len(), tokens)?;
    if let Some(p) = &probs {
        validate::slice_len("probs", p.len(), elems)?;
    }
    top1_capacity_rows(logits, tokens, experts, capacity_factor, ids, weights, dropped, probs)
}

impl GroupedRouting<'_> {
    pub(crate) fn validate(&self, experts: usize) -> Result<()> {
        let g = self.groups;
        if g == 0 || !experts.is_multiple_of(g) {
            return Err(Error::invalid(format!(
                "groups = {g} is invalid; it must be > 0 and divide experts = {experts}"
            )));
        }
        if self.topk_group == 0 || self.topk_group > g {
            return Err(Error::invalid(format!(
                "topk_group = {} is invalid; it must be in 1 ..= groups = {g}",
                self.topk_group
            )));
        }
        let reachable = self.topk_group * (experts / g);
        if self.k == 0 || self.k > reachable {
            return Err(Error::invalid(format!(
                "k = {} is invalid; it must be in 1 ..= topk_group * experts / groups = {reachable}",
                self.k
            )));
        }
        validate::slice_len("bias", self.bias.len(), experts)?;
        if let Some(e) = self.bias[..experts].iter().position(|b| !b.is_finite()) {
            return Err(Error::invalid(format!("bias[{e}] = {} is invalid; it must be finite", self.bias[e])));
        }
        let s = self.routed_scaling_factor;
        if !s.is_finite() {
            return Err(Error::invalid(format!("routed_scaling_factor = {s} is invalid; it must be finite")));
        }
        Ok(())
    }
}

/// Core of [`route_grouped_sigmoid`] on validated slices.
pub(crate) fn grouped_rows(
    logits: &[f32],
    tokens: usize,
    experts: usize,
    p: &GroupedRouting,
    ids: &mut [i32],
    weights: &mut [f32],
    mut scores: Option<&mut [f32]>,
) -> Result<()> {
    let exp = kernels()?.softmax.exp;
    let (k, size) = (p.k, experts / p.groups);
    let mut s = vec![0.0f32; experts];
    let mut biased = vec![0.0f32; experts];
    let mut group_score = vec![0.0f32; p.groups];
    let mut kept_groups = vec![0i32; p.topk_group];
    let mut kept = vec![false; p.groups];
    for t in 0..tokens {
        let x = &logits[t * experts..(t + 1) * experts];
        for (si, &v) in s.iter_mut().zip(x) {
            *si = -v;
        }
        // SAFETY: `s` holds `experts` values, transformed in place.
        unsafe { exp(s.as_ptr(), s.as_mut_ptr(), experts) };
        for e in 0..experts {
            let sig = 1.0 / (1.0 + s[e]);
            s[e] = sig;
            biased[e] = if sig.is_nan() { f32::NEG_INFINITY } else { sig + p.bias[e] };
        }
        for (g, gs) in group_score.iter_mut().enumerate() {
            let members = &biased[g * size..(g + 1) * size];
            let mut top = [0i32; 2];
            let n = size.min(2);
            select_top(members, |_| true, &mut top[..n]);
            *gs = top[..n].iter().map(|&i| members[i as usize]).sum();
        }
        select_top(&group_score, |_| true, &mut kept_groups);
        kept.iter_mut().for_each(|v| *v = false);
        for &g in &kept_groups {
            kept[g as usize] = true;
        }
        let (tid, tw) = (&mut ids[t * k..(t + 1) * k], &mut weights[t * k..(t + 1) * k]);
        select_top(&biased, |e| kept[e / size], tid);
        let mut sum = 0.0f32;
        for (w, &e) in tw.iter_mut().zip(tid.iter()) {
            let v = s[e as usize];
            *w = if v.is_nan() { 0.0 } else { v };
            sum += *w;
        }
        for w in tw.iter_mut() {
            *w = if sum > 0.0 { *w / sum * p.routed_scaling_factor } else { 0.0 };
        }
        if let Some(out) = scores.as_deref_mut() {
            out[t * experts..(t + 1) * experts].copy_from_slice(&s);
        }
    }
    Ok(())
}

/// Routes each token with the DeepSeek-V3 rule:
/// 1. scores `s = sigmoid(logits)`; selection uses `s + bias`;
/// 2. the experts form `groups` groups of `experts / groups`, scored by
///    the sum of their two best biased scores (the one score for groups
///    of one);
/// 3. the `topk_group` best groups are kept, and the `k` best experts by
///    biased score are chosen among them; experts in the other groups are
///    never chosen, whatever their scores;
/// 4. the weights are the unbiased scores of the chosen experts divided by
///    their sum, times `routed_scaling_factor` (a sum of 0 gives 0).
///
/// Groups and experts follow the module's selection rule; a NaN logit has
/// biased score -inf and weight 0. `scores`, if given, receives the
/// `tokens × experts` sigmoid scores.
///
/// Errors: groups not dividing the expert count, `topk_group` or `k` out
/// of range, a non-finite bias or scaling factor, or a slice too short.
pub fn route_grouped_sigmoid(
    logits: &[f32],
    tokens: usize,
    experts: usize,
    routing: &GroupedRouting,
    ids: &mut [i32],
    weights: &mut [f32],
    scores: Option<&mut [f32]>,
) -> Result<()> {
    let elems = check_logits(logits, tokens, experts)?;
    routing.validate(experts)?;
    let k = routing.k;
    validate::slice_len("ids", ids.len(), tokens * k)?;
    validate::slice_len("weights", weights.len(), tokens * k)?;
    if let Some(s) = &scores {
        validate::slice_len("scores", s.len(), elems)?;
    }
    grouped_rows(logits, tokens, experts, routing, ids, weights, scores)
}

/// Counts the (token, choice) pairs routed to each expert into
/// `counts[0 .. experts]`. Negative ids (dropped choices) are skipped.
///
/// Errors: an id at or above `experts`, or `counts` too short.
pub fn expert_counts(ids: &[i32], experts: usize, counts: &mut [i64]) -> Result<()> {
    validate::slice_len("counts", counts.len(), experts)?;
    if let Some(i) = ids.iter().position(|&e| e >= 0 && e as usize >= experts) {
        return Err(Error::invalid(format!("ids[{i}] = {} is out of range; experts = {experts}", ids[i])));
    }
    counts[..experts].iter_mut().for_each(|c| *c = 0);
    for &e in ids {
        if e >= 0 {
            counts[e as usize] += 1;
        }
    }
    Ok(())
}

/// Computes the load statistics of a routing decision: `counts[e]`, the
/// pairs routed to expert e (as [`expert_counts`]), `mean_probs[e]`, the
/// mean over tokens of its router probability in `probs` (`tokens ×
/// experts`, 0 for no tokens), and the Switch auxiliary loss.
pub fn load_balance_stats(
    ids: &[i32],
    probs: &[f32],
    tokens: usize,
    experts: usize,
    counts: &mut [i64],
    mean_probs: &mut [f32],
) -> Result<LoadStats> {
    let elems = check_logits(probs, tokens, experts)?;
    validate::slice_len("mean_probs", mean_probs.len(), experts)?;
    expert_counts(ids, experts, counts)?;
    let mut sums = vec![0.0f64; experts];
    for row in probs[..elems].chunks_exact(experts.max(1)) {
        for (s, &p) in sums.iter_mut().zip(row) {
            *s += p as f64;
        }
    }
    let total: i64 = counts[..experts].iter().sum();
    let mut aux = 0.0f64;
    for e in 0..experts {
        let mean = if tokens > 0 { sums[e] / tokens as f64 } else { 0.0 };
        mean_probs[e] = mean as f32;
        if total > 0 {
            aux += counts[e] as f64 / total as f64 * mean;
        }
    }
    Ok(LoadStats { aux_loss: (experts as f64 * aux) as f32 })
}

/// Returns the router z-loss, the mean over tokens of logsumexp(row)²,
/// accumulated in f64. NaN logits count as -inf; a row of only -inf gives
/// +inf; no tokens gives 0.
pub fn router_z_loss(logits: &[f32], tokens: usize, experts: usize) -> Result<f32> {
    check_logits(logits, tokens, experts)?;
    if tokens == 0 {
        return Ok(0.0);
    }
    let mut total = 0.0f64;
    for row in logits.chunks_exact(experts.max(1)).take(tokens) {
        let m = row.iter().map(|&v| key(v) as f64).fold(f64::NEG_INFINITY, f64::max);
        let lse = if m.is_finite() {
            m + row.iter().map(|&v| (key(v) as f64 - m).exp()).sum::<f64>().ln()
        } else {
            m
        };
        total += lse * lse;
    }
    Ok((total / tokens as f64) as f32)
}

/// Applies the auxiliary-loss-free balancing update: `bias[e] += step ·
/// sign(mean_load - counts[e])`, where mean_load is the mean of `counts`
/// over the experts. Underloaded experts gain bias, overloaded ones lose
/// it, and exactly balanced ones keep it.
///
/// Errors: a step that is not finite, or slices shorter than `experts`.
pub fn update_expert_bias(bias: &mut [f32], counts: &[i64], experts: usize, step: f32) -> Result<()> {
    if !step.is_finite() {
        return Err(Error::invalid(format!("step = {step} is invalid; it must be finite")));
    }
    validate::slice_len("bias", bias.len(), experts)?;
    validate::slice_len("counts", counts.len(), experts)?;
    if experts == 0 {
        return Ok(());
    }
    let total: i128 = counts[..experts].iter().map(|&c| c as i128).sum();
    for e in 0..experts {
        // Compares counts[e] with total / experts without rounding.
        let error = total - counts[e] as i128 * experts as i128;
        bias[e] += step * error.signum() as f32;
    }
    Ok(())
}
