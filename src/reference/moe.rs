//! f64 references of the mixture-of-experts family.
//!
//! Selection rule: a larger score wins, equal scores go to the lower
//! expert index, and NaN ranks as -inf. The references sort whole rows
//! instead of keeping a running top-k, so they check the kernels' logic
//! by a different route.

/// Returns the indices of `scores` ordered best first by the selection
/// rule, restricted to those for which `allowed` holds.
fn ranked(scores: &[f64], allowed: impl Fn(usize) -> bool) -> Vec<usize> {
    let key = |v: f64| if v.is_nan() { f64::NEG_INFINITY } else { v };
    let mut idx: Vec<usize> = (0..scores.len()).filter(|&e| allowed(e)).collect();
    idx.sort_by(|&a, &b| key(scores[b]).partial_cmp(&key(scores[a])).unwrap().then(a.cmp(&b)));
    idx
}

/// Softmax of one row of logits with NaN treated as -inf: +inf entries
/// share the probability evenly, and a row with neither finite nor +inf
/// entries gives zeros.
pub fn router_probs(logits: &[f32]) -> Vec<f64> {
    let x: Vec<f64> = logits.iter().map(|&v| if v.is_nan() { f64::NEG_INFINITY } else { v as f64 }).collect();
    let infinite = x.iter().filter(|&&v| v == f64::INFINITY).count();
    if infinite > 0 {
        return x.iter().map(|&v| if v == f64::INFINITY { 1.0 / infinite as f64 } else { 0.0 }).collect();
    }
    let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return vec![0.0; x.len()];
    }
    let e: Vec<f64> = x.iter().map(|&v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// Softmax top-k routing of one row: the chosen ids best first and their
/// weights (probabilities, divided by their sum when `renormalize`; a sum
/// of 0 gives 0).
pub fn softmax_topk(logits: &[f32], k: usize, renormalize: bool) -> (Vec<usize>, Vec<f64>) {
    let p = router_probs(logits);
    let x: Vec<f64> = logits.iter().map(|&v| v as f64).collect();
    let ids: Vec<usize> = ranked(&x, |_| true).into_iter().take(k).collect();
    let mut w: Vec<f64> = ids.iter().map(|&e| p[e]).collect();
    if renormalize {
        let s: f64 = w.iter().sum();
        w.iter_mut().for_each(|v| *v = if s > 0.0 { *v / s } else { 0.0 });
    }
    (ids, w)
}

/// Switch top-1 routing with capacity `min(tokens, ceil(factor · tokens /
/// experts))` over `tokens × experts` logits: per token the chosen expert
/// (or None when dropped) and its probability, plus the capacity.
pub fn top1_capacity(logits: &[f32], tokens: usize, experts: usize, factor: f64) -> (Vec<Option<(usize, f64)>>, usize) {
    let capacity = ((factor * tokens as f64 / experts as f64).ceil() as usize).min(tokens);
    let mut load = vec![0usize; experts];
    let mut out = Vec::with_capacity(tokens);
    for t in 0..tokens {
        let row = &logits[t * experts..(t + 1) * experts];
        let (ids, w) = softmax_topk(row, 1, false);
        if load[ids[0]] < capacity {
            load[ids[0]] += 1;
            out.push(Some((ids[0], w[0])));
        } else {
            out.push(None);
        }
    }
    (out, capacity)
}

/// DeepSeek-V3 routing of one row, written step by step from the rule:
/// sigmoid scores, bias for selection only, groups scored by the sum of
/// their top-2 biased scores, the best `topk_group` groups kept, the top
/// `k` experts among them, weights normalized over the chosen and scaled.
/// A NaN score ranks as -inf and weighs 0.
pub fn deepseek_v3(
    logits: &[f32],
    bias: &[f32],
    groups: usize,
    topk_group: usize,
    k: usize,
    scale: f64,
) -> (Vec<usize>, Vec<f64>) {
    let (biased, group_score) = deepseek_v3_scores(logits, bias, groups);
    let kept: Vec<usize> = ranked(&group_score, |_| true).into_iter().take(topk_group).collect();
    deepseek_v3_pick(logits, &biased, groups, &kept, k, scale)
}

/// Returns every outcome of [`deepseek_v3`] that an f32 kernel may reach
/// when group scores sit within `tol` of each other.
///
/// Each set of `topk_group` kept groups counts when no kept group scores
/// more than `tol` below a dropped one. Group scores that tie in exact
/// arithmetic, such as `(a + 0.75) + (b - 1)` against `(b + 0) + (a - 0.25)`,
/// round differently in f32 and f64, so either side of the tie is correct.
/// Infinite scores keep the exact rule. The strict outcome comes first.
/// The search tries every subset, so `groups` is at most 16.
pub fn deepseek_v3_near_ties(
    logits: &[f32],
    bias: &[f32],
    groups: usize,
    topk_group: usize,
    k: usize,
    scale: f64,
    tol: f64,
) -> Vec<(Vec<usize>, Vec<f64>)> {
    assert!(groups <= 16, "the subset search covers at most 16 groups, got {groups}");
    let (biased, gs) = deepseek_v3_scores(logits, bias, groups);
    let mut out = vec![deepseek_v3(logits, bias, groups, topk_group, k, scale)];
    let key = |v: f64| if v.is_nan() { f64::NEG_INFINITY } else { v };
    let beats = |g: usize, h: usize| {
        let (a, b) = (key(gs[g]), key(gs[h]));
        a > b || (a == b && g < h) || (a.is_finite() && b.is_finite() && b - a <= tol)
    };
    for mask in 0u32..1 << groups {
        if mask.count_ones() as usize != topk_group {
            continue;
        }
        let kept: Vec<usize> = (0..groups).filter(|&g| mask >> g & 1 == 1).collect();
        let dropped: Vec<usize> = (0..groups).filter(|&g| mask >> g & 1 == 0).collect();
        if kept.iter().all(|&g| dropped.iter().all(|&h| beats(g, h))) {
            let outcome = deepseek_v3_pick(logits, &biased, groups, &kept, k, scale);
            if !out.contains(&outcome) {
                out.push(outcome);
            }
        }
    }
    out
}

/// Computes the biased scores of a row (NaN as -inf) and the score of each
/// group, the sum of its top-2 biased scores.
fn deepseek_v3_scores(logits: &[f32], bias: &[f32], groups: usize) -> (Vec<f64>, Vec<f64>) {
    let e = logits.len();
    let size = e / groups;
    let biased: Vec<f64> = (0..e)
        .map(|i| {
            let score = 1.0 / (1.0 + (-(logits[i] as f64)).exp());
            if score.is_nan() { f64::NEG_INFINITY } else { score + bias[i] as f64 }
        })
        .collect();
    let group_score: Vec<f64> = (0..groups)
        .map(|g| {
            let members = &biased[g * size..(g + 1) * size];
            ranked(members, |_| true).into_iter().take(2).map(|i| members[i]).sum()
        })
        .collect();
    (biased, group_score)
}

/// Picks the top `k` experts of the `kept` groups and computes their
/// normalized, scaled sigmoid weights.
fn deepseek_v3_pick(
    logits: &[f32],
    biased: &[f64],
    groups: usize,
    kept: &[usize],
    k: usize,
    scale: f64,
) -> (Vec<usize>, Vec<f64>) {
    let size = logits.len() / groups;
    let ids: Vec<usize> = ranked(biased, |i| kept.contains(&(i / size))).into_iter().take(k).collect();
    let score = |i: usize| 1.0 / (1.0 + (-(logits[i] as f64)).exp());
    let raw: Vec<f64> = ids.iter().map(|&i| if score(i).is_nan() { 0.0 } else { score(i) }).collect();
    let s: f64 = raw.iter().sum();
    let w = raw.iter().map(|v| if s > 0.0 { v / s * scale } else { 0.0 }).collect();
    (ids, w)
}

/// Computes the expected layout of `tokens × k` ids (negative = dropped) over
/// `experts`, each segment padded to a multiple of `block`: the counts,
/// the offsets and, per expert, its tokens in order.
pub fn layout(ids: &[i32], k: usize, experts: usize, block: usize) -> (Vec<i64>, Vec<i64>, Vec<Vec<usize>>) {
    let mut members = vec![Vec::new(); experts];
    for (i, &e) in ids.iter().enumerate() {
        if e >= 0 {
            members[e as usize].push(i / k);
        }
    }
    let counts: Vec<i64> = members.iter().map(|m| m.len() as i64).collect();
    let mut offsets = vec![0i64];
    for m in &members {
        let padded = m.len().div_ceil(block) * block;
        offsets.push(offsets.last().unwrap() + padded as i64);
    }
    (counts, offsets, members)
}

/// Router z-loss: the mean over tokens of logsumexp(row)², NaN as -inf.
pub fn z_loss(logits: &[f32], tokens: usize, experts: usize) -> f64 {
    if tokens == 0 {
        return 0.0;
    }
    let mut total = 0.0;
    for t in 0..tokens {
        let row: Vec<f64> = logits[t * experts..(t + 1) * experts]
            .iter()
            .map(|&v| if v.is_nan() { f64::NEG_INFINITY } else { v as f64 })
            .collect();
        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = if m.is_finite() { m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln() } else { m };
        total += lse * lse;
    }
    total / tokens as f64
}

/// Switch auxiliary loss `E · Σ f_i · P_i` from per-expert counts and mean
/// probabilities.
pub fn aux_loss(counts: &[i64], mean_probs: &[f64]) -> f64 {
    let total: i64 = counts.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let e = counts.len() as f64;
    e * counts.iter().zip(mean_probs).map(|(&c, &p)| c as f64 / total as f64 * p).sum::<f64>()
}

/// SiLU-gated FFN of one token row `x` (length d) for weights in the
/// `Linear` layout: gate and up `width × d`, down `d × width`.
pub fn swiglu_ffn(x: &[f64], gate: &[f64], up: &[f64], down: &[f64], width: usize) -> Vec<f64> {
    let d = x.len();
    let dot = |w: &[f64], v: &[f64]| w.iter().zip(v).map(|(a, b)| a * b).sum::<f64>();
    let h: Vec<f64> = (0..width)
        .map(|j| {
            let g = dot(&gate[j * d..(j + 1) * d], x);
            let u = dot(&up[j * d..(j + 1) * d], x);
            g / (1.0 + (-g).exp()) * u
        })
        .collect();
    (0..d).map(|i| dot(&down[i * width..(i + 1) * width], &h)).collect()
}
