//! Mixture-of-experts routers, layout, gather, combine and the fused layer
//! under every dispatch level, against the f64 references in
//! `mlak::reference::moe`.
//!
//! Tolerances, in units of f32 epsilon (EPS):
//! - router probabilities come from the vector exp (at most 2 ulp) and an
//!   f32 row sum over at most 64 experts: 16 EPS relative, plus EPS per unit
//!   of distance below the row maximum for the rounding of (x − max);
//!   renormalized weights divide two such values, so they get twice that;
//! - sigmoid scores (1 / (1 + e^-x)) carry the exp error and two roundings,
//!   and the normalized weights a sum over at most 16 of them: 32 EPS
//!   relative to the scaling factor;
//! - the combine sums k FMA-rounded terms, so each output is within
//!   (k + 1)·EPS·Σ|w·y| of the exact sum;
//! - the layer runs three dot products of depth at most 64 in f32, whose
//!   rounding stays below depth·EPS·Σ|terms|; with inputs in [-1, 1] that
//!   is bounded by 1e-4 times the row's largest magnitude term sum, which
//!   the test computes alongside the reference;
//! - a group score sums two biased sigmoid scores of magnitude at most 2.
//!   It carries up to 4 EPS from each sigmoid and a rounding for each bias
//!   and for the sum. So two groups within GROUP_TIE (32 EPS) of each
//!   other may rank either way.

mod common;

use common::{assert_ran, cases, on_isa, Rng, EPS};
use half::{bf16, f16};
use mlak::reference::moe as reference;
use mlak::{FfnWeights, GroupedRouting, Isa, MoeLayer, MoeLayout, Router, Weights};
use proptest::prelude::*;

/// Group scores closer than this may rank either way in f32 (see the
/// module note).
const GROUP_TIE: f64 = 32.0 * EPS;

/// Logits on a coarse grid, so that equal values (ties) are frequent, with
/// an occasional NaN.
fn grid_logits(n: usize) -> impl Strategy<Value = Vec<f32>> {
    proptest::collection::vec(prop_oneof![20 => (-8i32..8).prop_map(|v| v as f32 * 0.5), 1 => Just(f32::NAN)], n)
}

fn check_close(what: &str, i: usize, got: f32, want: f64, tol: f64, shape: &str) {
    let ok = (got as f64 - want).abs() <= tol || (got.is_nan() && want.is_nan());
    assert!(ok, "{what} index {i}: got {got:e}, want {want:e}, tol {tol:e}, {shape}");
}

/// Checks a softmax top-k decision against the reference, row by row.
fn check_softmax_topk(logits: &[f32], t: usize, e: usize, k: usize, renorm: bool, ids: &[i32], w: &[f32]) {
    for r in 0..t {
        let row = &logits[r * e..(r + 1) * e];
        let (want_ids, want_w) = reference::softmax_topk(row, k, renorm);
        let shape = format!("shape tokens={t} experts={e} k={k} renormalize={renorm} row={row:?}");
        let got_ids: Vec<usize> = ids[r * k..(r + 1) * k].iter().map(|&v| v as usize).collect();
        assert_eq!(got_ids, want_ids, "ids of row {r}, {shape}");
        let m = row.iter().filter(|v| !v.is_nan()).fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        for j in 0..k {
            let dist = (m - row[want_ids[j]] as f64).abs().min(64.0);
            let factor = if renorm { 2.0 } else { 1.0 };
            let tol = factor * EPS * (16.0 + dist) * want_w[j].abs() + 1e-37;
            check_close("weight", r * k + j, w[r * k + j], want_w[j], tol, &shape);
        }
    }
}

/// A small random layer: weights in [-1, 1] scaled by 1/sqrt(fan-in).
struct LayerData {
    d: usize,
    experts: usize,
    width: usize,
    shared_width: usize,
    router: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    down: Vec<f32>,
    shared: [Vec<f32>; 3],
    bias: Vec<f32>,
}

impl LayerData {
    fn new(seed: u64, d: usize, experts: usize, width: usize, shared_width: usize, bf16_exact: bool) -> Self {
        let mut rng = Rng::new(seed);
        let mut vec = |n: usize, fan: usize| -> Vec<f32> {
            let s = 1.0 / (fan as f32).sqrt();
            let v = rng.vec(n, -s, s);
            // Weights that bf16 holds exactly, so that the reference sees
            // the same values as the bf16 path.
            if bf16_exact {
                v.into_iter().map(|x| bf16::from_f32(x).to_f32()).collect()
            } else {
                v
            }
        };
        LayerData {
            d,
            experts,
            width,
            shared_width,
            router: vec(experts * d, d),
            gate: vec(experts * width * d, d),
            up: vec(experts * width * d, d),
            down: vec(experts * d * width, width),
            shared: [vec(shared_width * d, d), vec(shared_width * d, d), vec(d * shared_width, shared_width)],
            bias: vec(experts, 64),
        }
    }

    /// Reference output of the layer for `x`, with the row magnitude used
    /// by the tolerance (the same sums with absolute values).
    fn reference(&self, x: &[f32], tokens: usize, router: &Router) -> (Vec<f64>, Vec<f64>) {
        let (d, e, f) = (self.d, self.experts, self.width);
        let to64 = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
        let mut out = vec![0.0; tokens * d];
        let mut mag = vec![0.0; tokens];
        let mut logits = vec![0.0f32; tokens * e];
        for t in 0..tokens {
            for j in 0..e {
                let s: f64 = (0..d).map(|p| x[t * d + p] as f64 * self.router[j * d + p] as f64).sum();
                logits[t * e + j] = s as f32;
            }
        }
        let mut choices: Vec<Vec<(usize, f64)>> = Vec::new();
        match router {
            Router::SoftmaxTopK { k, renormalize } => {
                for t in 0..tokens {
                    let (ids, w) = reference::softmax_topk(&logits[t * e..(t + 1) * e], *k, *renormalize);
                    choices.push(ids.into_iter().zip(w).collect());
                }
            }
            Router::Top1Capacity { capacity_factor } => {
                let (c, _) = reference::top1_capacity(&logits, tokens, e, *capacity_factor as f64);
                choices = c.into_iter().map(|o| o.into_iter().collect()).collect();
            }
            Router::GroupedSigmoid(g) => {
                for t in 0..tokens {
                    let row = &logits[t * e..(t + 1) * e];
                    let (ids, w) =
                        reference::deepseek_v3(row, g.bias, g.groups, g.topk_group, g.k, g.routed_scaling_factor as f64);
                    choices.push(ids.into_iter().zip(w).collect());
                }
            }
        }
        let abs = |v: &[f64]| v.iter().map(|a| a.abs()).collect::<Vec<f64>>();
        for t in 0..tokens {
            let xt = to64(&x[t * d..(t + 1) * d]);
            let mut add = |y: Vec<f64>, ya: Vec<f64>, w: f64| {
                for i in 0..d {
                    out[t * d + i] += w * y[i];
                }
                mag[t] += w.abs() * ya.iter().fold(0.0, |a: f64, &b| a.max(b));
            };
            for &(ex, w) in &choices[t] {
                let (g, u, dn) = (
                    to64(&self.gate[ex * f * d..(ex + 1) * f * d]),
                    to64(&self.up[ex * f * d..(ex + 1) * f * d]),
                    to64(&self.down[ex * d * f..(ex + 1) * d * f]),
                );
                let y = reference::swiglu_ffn(&xt, &g, &u, &dn, f);
                let ya = reference::swiglu_ffn(&abs(&xt), &abs(&g), &abs(&u), &abs(&dn), f);
                add(y, ya, w);
            }
            if self.shared_width > 0 {
                let [g, u, dn] = [to64(&self.shared[0]), to64(&self.shared[1]), to64(&self.shared[2])];
                let y = reference::swiglu_ffn(&xt, &g, &u, &dn, self.shared_width);
                let ya = reference::swiglu_ffn(&abs(&xt), &abs(&g), &abs(&u), &abs(&dn), self.shared_width);
                add(y, ya, 1.0);
            }
        }
        (out, mag)
    }
}

/// Runs the layer with the weights of `data` as f32 or bf16 and checks it
/// against the reference.
fn check_layer(data: &LayerData, tokens: usize, router: Router, use_bf16: bool, seed: u64) {
    let x = Rng::new(seed).vec(tokens * data.d, -1.0, 1.0);
    let conv = |v: &[f32]| v.iter().map(|&a| bf16::from_f32(a)).collect::<Vec<bf16>>();
    let (g16, u16, d16) = (conv(&data.gate), conv(&data.up), conv(&data.down));
    let s16 = [conv(&data.shared[0]), conv(&data.shared[1]), conv(&data.shared[2])];
    let b = use_bf16;
    let expert_ffn = FfnWeights {
        gate: pick(b, &data.gate, &g16),
        up: pick(b, &data.up, &u16),
        down: pick(b, &data.down, &d16),
        width: data.width,
    };
    let shared_ffn = (data.shared_width > 0).then(|| FfnWeights {
        gate: pick(b, &data.shared[0], &s16[0]),
        up: pick(b, &data.shared[1], &s16[1]),
        down: pick(b, &data.shared[2], &s16[2]),
        width: data.shared_width,
    });
    let layer = MoeLayer { d: data.d, experts: data.experts, router_weight: &data.router, router, expert_ffn, shared_ffn };
    let mut out = vec![f32::NAN; tokens * data.d];
    mlak::moe_layer(&layer, &x, tokens, &mut out).unwrap();
    let (want, mag) = data.reference(&x, tokens, &router);
    let shape = format!(
        "shape tokens={tokens} d={} experts={} width={} shared={} bf16={use_bf16} router={router:?}",
        data.d, data.experts, data.width, data.shared_width
    );
    for t in 0..tokens {
        for i in 0..data.d {
            let tol = 1e-4 * mag[t] + 1e-30;
            check_close("layer output", t * data.d + i, out[t * data.d + i], want[t * data.d + i], tol, &shape);
        }
    }
}

fn pick<'a>(use_bf16: bool, f: &'a [f32], b: &'a [bf16]) -> Weights<'a> {
    if use_bf16 {
        Weights::Bf16(b)
    } else {
        Weights::F32(f)
    }
}

macro_rules! isa_suite {
    ($($module:ident => $isa:expr),* $(,)?) => {$(
        mod $module {
            use super::*;
            const ISA: Isa = $isa;

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(cases(32)))]

                #[test]
                fn softmax_topk_matches_reference(
                    (t, e, k, logits) in (0usize..6, 1usize..20).prop_flat_map(|(t, e)| {
                        (Just(t), Just(e), 1..=e, grid_logits(t * e))
                    }),
                    renorm in any::<bool>(),
                ) {
                    on_isa(ISA, || {
                        let mut ids = vec![-7i32; t * k];
                        let mut w = vec![f32::NAN; t * k];
                        let mut probs = vec![0.0f32; t * e];
                        mlak::route_softmax_topk(&logits, t, e, k, renorm, &mut ids, &mut w, Some(&mut probs)).unwrap();
                        if t > 0 {
                            assert_ran(ISA);
                        }
                        check_softmax_topk(&logits, t, e, k, renorm, &ids, &w);
                        for r in 0..t {
                            let want = reference::router_probs(&logits[r * e..(r + 1) * e]);
                            for j in 0..e {
                                let tol = EPS * 32.0 * want[j] + 1e-37;
                                check_close("probs", r * e + j, probs[r * e + j], want[j], tol, "softmax top-k");
                            }
                        }
                    });
                }

                #[test]
                fn grouped_sigmoid_matches_reference(
                    (t, groups, size, topk_group, k, logits, bias) in (0usize..5, 1usize..5, 1usize..5)
                        .prop_flat_map(|(t, g, s)| (Just(t), Just(g), Just(s), 1..=g))
                        .prop_flat_map(|(t, g, s, tg)| {
                            (Just(t), Just(g), Just(s), Just(tg), 1..=tg * s, grid_logits(t * g * s),
                             proptest::collection::vec((-4i32..4).prop_map(|v| v as f32 * 0.25), g * s))
                        }),
                    scale in prop_oneof![Just(1.0f32), Just(2.5)],
                ) {
                    on_isa(ISA, || {
                        let e = groups * size;
                        let routing = GroupedRouting { bias: &bias, groups, topk_group, k, routed_scaling_factor: scale };
                        let mut ids = vec![-7i32; t * k];
                        let mut w = vec![f32::NAN; t * k];
                        mlak::route_grouped_sigmoid(&logits, t, e, &routing, &mut ids, &mut w, None).unwrap();
                        if t > 0 {
                            assert_ran(ISA);
                        }
                        for r in 0..t {
                            let row = &logits[r * e..(r + 1) * e];
                            let outcomes =
                                reference::deepseek_v3_near_ties(row, &bias, groups, topk_group, k, scale as f64, GROUP_TIE);
                            let shape = format!("shape experts={e} groups={groups} topk_group={topk_group} k={k} row={row:?} bias={bias:?}");
                            let got: Vec<usize> = ids[r * k..(r + 1) * k].iter().map(|&v| v as usize).collect();
                            let (want_ids, want_w) =
                                outcomes.iter().find(|(want, _)| *want == got).unwrap_or(&outcomes[0]);
                            assert_eq!(&got, want_ids, "ids of row {r} (outcomes allowed by near-tied groups: {outcomes:?}), {shape}");
                            for j in 0..k {
                                let tol = EPS * 32.0 * scale as f64 + 1e-37;
                                check_close("weight", r * k + j, w[r * k + j], want_w[j], tol, &shape);
                            }
                        }
                    });
                }

                #[test]
                fn layout_and_gather_match_reference(
                    (t, e, k, ids) in (0usize..40, 1usize..9).prop_flat_map(|(t, e)| {
                        (Just(t), Just(e), 1..=e.min(3)).prop_flat_map(|(t, e, k)| {
                            (Just(t), Just(e), Just(k), proptest::collection::vec(-1i32..e as i32, t * k))
                        })
                    }),
                    block in prop_oneof![Just(1usize), Just(4), Just(7)],
                    d in 0usize..70,
                    pad in 0usize..3,
                    offset in 0usize..2,
                ) {
                    on_isa(ISA, || {
                        let layout = MoeLayout::new(&ids, t, k, e, block).unwrap();
                        let (counts, offsets, members) = reference::layout(&ids, k, e, block);
                        assert_eq!(layout.counts(), &counts[..], "counts, ids={ids:?}");
                        assert_eq!(layout.offsets(), &offsets[..], "offsets, ids={ids:?} block={block}");
                        for ex in 0..e {
                            let seg = &layout.slot_token()[offsets[ex] as usize..offsets[ex + 1] as usize];
                            let got: Vec<usize> = seg.iter().filter(|&&s| s >= 0).map(|&s| s as usize).collect();
                            assert_eq!(got, members[ex], "expert {ex} tokens, ids={ids:?}");
                            assert!(seg[counts[ex] as usize..].iter().all(|&s| s == -1), "padding of expert {ex}: {seg:?}");
                        }
                        for (i, &s) in layout.token_slot().iter().enumerate() {
                            if ids[i] < 0 {
                                assert_eq!(s, -1, "dropped choice {i}");
                            } else {
                                assert_eq!(layout.slot_token()[s as usize], (i / k) as i64, "slot of choice {i}");
                            }
                        }

                        let stride = d + pad;
                        let src_len = if t == 0 { 0 } else { (t - 1) * stride + d };
                        let src: Vec<f32> = Rng::new(t as u64 + 1).vec(src_len + offset, -3.0, 3.0);
                        let src = &src[offset..];
                        let slots = layout.num_slots();
                        let dst_len = if slots == 0 { 0 } else { (slots - 1) * stride + d };
                        let mut dst = vec![f32::NAN; dst_len + offset + 1];
                        mlak::moe_gather(src, stride, d, &layout, &mut dst[offset + 1..], stride).unwrap();
                        if slots > 0 && d > 0 {
                            assert_ran(ISA);
                        }
                        let dst = &dst[offset + 1..];
                        for (s, &tok) in layout.slot_token().iter().enumerate() {
                            for c in 0..d {
                                let want = if tok < 0 { 0.0 } else { src[tok as usize * stride + c] };
                                assert_eq!(dst[s * stride + c].to_bits(), want.to_bits(), "slot {s} column {c}, d={d} stride={stride}");
                            }
                        }

                        // 16-bit rows: odd widths exercise the byte tail.
                        let src16: Vec<bf16> = src.iter().map(|&v| bf16::from_f32(v)).collect();
                        let mut dst16 = vec![bf16::from_f32(9.0); dst_len];
                        mlak::moe_gather(&src16, stride, d, &layout, &mut dst16, stride).unwrap();
                        let srch: Vec<f16> = src.iter().map(|&v| f16::from_f32(v)).collect();
                        let mut dsth = vec![f16::from_f32(9.0); dst_len];
                        mlak::moe_gather(&srch, stride, d, &layout, &mut dsth, stride).unwrap();
                        for (s, &tok) in layout.slot_token().iter().enumerate() {
                            for c in 0..d {
                                let (wb, wh) = if tok < 0 { (0, 0) } else {
                                    (src16[tok as usize * stride + c].to_bits(), srch[tok as usize * stride + c].to_bits())
                                };
                                assert_eq!(dst16[s * stride + c].to_bits(), wb, "bf16 slot {s} column {c}, d={d}");
                                assert_eq!(dsth[s * stride + c].to_bits(), wh, "f16 slot {s} column {c}, d={d}");
                            }
                        }
                    });
                }

                #[test]
                fn combine_matches_reference(
                    (t, e, k, ids) in (0usize..30, 1usize..9).prop_flat_map(|(t, e)| {
                        (Just(t), Just(e), 1..=e.min(4)).prop_flat_map(|(t, e, k)| {
                            (Just(t), Just(e), Just(k), proptest::collection::vec(-1i32..e as i32, t * k))
                        })
                    }),
                    d in 0usize..90,
                    pad in 0usize..3,
                    accumulate in any::<bool>(),
                ) {
                    on_isa(ISA, || {
                        let layout = MoeLayout::new(&ids, t, k, e, 1).unwrap();
                        let stride = d + pad;
                        let slots = layout.num_slots();
                        let mut rng = Rng::new((t * 31 + d) as u64);
                        let y = rng.vec(slots * stride, -2.0, 2.0);
                        let w = rng.vec(t * k, 0.0, 1.0);
                        let init = rng.vec(t * stride, -1.0, 1.0);
                        let mut out = init.clone();
                        mlak::moe_combine(&y, stride, d, &layout, &w, &mut out, stride, accumulate).unwrap();
                        if t > 0 && d > 0 {
                            assert_ran(ISA);
                        }
                        for tok in 0..t {
                            for c in 0..d {
                                let mut want = if accumulate { init[tok * stride + c] as f64 } else { 0.0 };
                                let mut mag = want.abs();
                                for j in 0..k {
                                    let s = layout.token_slot()[tok * k + j];
                                    if s >= 0 {
                                        let term = w[tok * k + j] as f64 * y[s as usize * stride + c] as f64;
                                        want += term;
                                        mag += term.abs();
                                    }
                                }
                                let tol = (k + 1) as f64 * EPS * mag;
                                check_close("combine", tok * stride + c, out[tok * stride + c], want, tol,
                                    &format!("tokens={t} k={k} d={d} stride={stride} accumulate={accumulate}"));
                            }
                            for c in d..stride.min(out.len() - tok * stride) {
                                assert_eq!(out[tok * stride + c], init[tok * stride + c], "padding column {c} of token {tok} written");
                            }
                        }
                    });
                }
            }

            #[test]
            fn top1_capacity_matches_reference() {
                on_isa(ISA, || {
                    for (t, e, factor) in [(0usize, 4usize, 1.0f32), (1, 1, 0.01), (37, 5, 1.0), (64, 8, 1.25), (20, 4, 100.0), (33, 7, 0.3)] {
                        let mut rng = Rng::new(t as u64 + 3);
                        // Skewed logits, so that some experts overflow.
                        let logits: Vec<f32> = (0..t * e).map(|i| rng.uniform(-1.0, 1.0) + if i % e == 0 { 1.5 } else { 0.0 }).collect();
                        let mut ids = vec![-7i32; t];
                        let mut w = vec![f32::NAN; t];
                        let mut dropped = vec![-7i64; t];
                        let r = mlak::route_top1_capacity(&logits, t, e, factor, &mut ids, &mut w, &mut dropped, None).unwrap();
                        if t > 0 {
                            assert_ran(ISA);
                        }
                        let (want, capacity) = reference::top1_capacity(&logits, t, e, factor as f64);
                        assert_eq!(r.capacity, capacity, "capacity for tokens={t} experts={e} factor={factor}");
                        assert!(r.capacity <= t, "capacity {} exceeds tokens {t}", r.capacity);
                        let want_dropped: Vec<i64> = (0..t).filter(|&i| want[i].is_none()).map(|i| i as i64).collect();
                        assert_eq!(&dropped[..r.dropped], &want_dropped[..], "dropped tokens, tokens={t} experts={e} factor={factor}");
                        for i in 0..t {
                            match want[i] {
                                None => assert_eq!((ids[i], w[i]), (-1, 0.0), "dropped token {i}"),
                                Some((id, p)) => {
                                    assert_eq!(ids[i], id as i32, "expert of token {i}");
                                    check_close("weight", i, w[i], p, 64.0 * EPS * p, "top-1 capacity");
                                }
                            }
                        }
                    }
                });
            }

            #[test]
            fn grouped_routing_never_picks_dropped_groups() {
                on_isa(ISA, || {
                    // Groups of two. Group 0 holds the best single expert
                    // (biased 0.9) but its partner drags its group score down;
                    // group 1 wins with two negative biased scores.
                    let logits = [2.2f32, 0.0, 0.0, 0.0, -3.0, -3.0, -3.0, -3.0];
                    let bias = [0.0f32, -5.0, -1.0, -1.0, -2.0, -2.0, -2.0, -2.0];
                    let routing = GroupedRouting { bias: &bias, groups: 4, topk_group: 1, k: 2, routed_scaling_factor: 2.5 };
                    let (mut ids, mut w) = ([0i32; 2], [0.0f32; 2]);
                    mlak::route_grouped_sigmoid(&logits, 1, 8, &routing, &mut ids, &mut w, None).unwrap();
                    assert_ran(ISA);
                    assert_eq!(ids, [2, 3], "experts must come from the kept group 1");
                    // Equal sigmoid scores 0.5 normalize to 0.5 each, times 2.5.
                    assert_eq!(w, [1.25, 1.25], "weights from unbiased scores");
                    let (want, _) = reference::deepseek_v3(&logits, &bias, 4, 1, 2, 2.5);
                    assert_eq!(want, vec![2, 3], "reference disagrees");
                });
            }

            #[test]
            fn routers_tie_and_nan_rules() {
                on_isa(ISA, || {
                    let nan = f32::NAN;
                    let e = 6;
                    let mut ids = vec![0i32; 3];
                    let mut w = vec![0.0f32; 3];
                    // Ties go to the lower index.
                    mlak::route_softmax_topk(&[1.0, 3.0, 3.0, 0.0, 3.0, 1.0], 1, e, 3, true, &mut ids, &mut w, None).unwrap();
                    assert_eq!(ids, [1, 2, 4], "ties");
                    // NaN is never chosen over a finite logit, even -1e30.
                    mlak::route_softmax_topk(&[nan, -1e30, nan, 2.0, nan, nan], 1, e, 2, false, &mut ids[..2], &mut w[..2], None).unwrap();
                    assert_eq!(&ids[..2], &[3, 1], "NaN against finite");
                    // An all-NaN row still yields distinct in-range ids.
                    for k in [1, 3, 6] {
                        let mut ids = vec![-7i32; k];
                        let mut w = vec![f32::NAN; k];
                        mlak::route_softmax_topk(&[nan; 6], 1, e, k, true, &mut ids, &mut w, None).unwrap();
                        assert_eq!(ids, (0..k as i32).collect::<Vec<_>>(), "all-NaN row, k={k}");
                        assert!(w.iter().all(|&v| v == 0.0), "all-NaN weights {w:?}");
                        let bias = [0.0f32; 6];
                        let routing = GroupedRouting { bias: &bias, groups: 3, topk_group: 3, k, routed_scaling_factor: 1.0 };
                        mlak::route_grouped_sigmoid(&[nan; 6], 1, e, &routing, &mut ids, &mut w, None).unwrap();
                        assert_eq!(ids, (0..k as i32).collect::<Vec<_>>(), "grouped all-NaN row, k={k}");
                    }
                    // Grouped: a NaN expert is not chosen even with a large bias.
                    let bias = [5.0f32, 0.0, 0.0, 0.0, 0.0, 0.0];
                    let routing = GroupedRouting { bias: &bias, groups: 1, topk_group: 1, k: 1, routed_scaling_factor: 1.0 };
                    mlak::route_grouped_sigmoid(&[nan, -20.0, -30.0, -40.0, -50.0, -60.0], 1, e, &routing, &mut ids[..1], &mut w[..1], None).unwrap();
                    assert_eq!(ids[0], 1, "grouped NaN against finite");
                    let mut dropped = [0i64; 1];
                    mlak::route_top1_capacity(&[nan; 6], 1, e, 1.0, &mut ids[..1], &mut w[..1], &mut dropped, None).unwrap();
                    assert_eq!(ids[0], 0, "top-1 all-NaN row");
                    // +inf logits share the probability evenly.
                    let inf = f32::INFINITY;
                    let mut probs = [f32::NAN; 6];
                    mlak::route_softmax_topk(&[1.0, inf, 0.0, inf, nan, 2.0], 1, e, 3, false, &mut ids, &mut w, Some(&mut probs)).unwrap();
                    assert_eq!(ids, [1, 3, 5], "+inf logits first");
                    assert_eq!(probs, [0.0, 0.5, 0.0, 0.5, 0.0, 0.0], "+inf probabilities");
                });
            }

            #[test]
            fn layer_matches_reference() {
                on_isa(ISA, || {
                    let data = LayerData::new(5, 24, 8, 13, 0, false);
                    let shared = LayerData::new(6, 37, 8, 19, 9, false);
                    let bias = shared.bias.clone();
                    let grouped = Router::GroupedSigmoid(GroupedRouting { bias: &bias, groups: 4, topk_group: 2, k: 3, routed_scaling_factor: 2.5 });
                    let routers = [
                        Router::SoftmaxTopK { k: 2, renormalize: true },
                        Router::SoftmaxTopK { k: 8, renormalize: false },
                        Router::Top1Capacity { capacity_factor: 1.0 },
                        grouped,
                    ];
                    for (i, router) in routers.into_iter().enumerate() {
                        for tokens in [0usize, 1, 3, 5, 17] {
                            check_layer(&data, tokens, router, false, 100 + tokens as u64);
                            check_layer(&shared, tokens, router, false, 200 + tokens as u64 + i as u64);
                        }
                    }
                    assert_ran(ISA);
                    let exact = LayerData::new(7, 40, 8, 21, 11, true);
                    for tokens in [1usize, 6] {
                        check_layer(&exact, tokens, Router::SoftmaxTopK { k: 3, renormalize: true }, true, 300);
                        check_layer(&exact, tokens, grouped, true, 301);
                    }
                });
            }

            #[test]
            fn layer_routes_all_tokens_to_one_expert() {
                on_isa(ISA, || {
                    let mut data = LayerData::new(8, 16, 4, 8, 0, false);
                    // A router that prefers expert 2 for every token.
                    for v in data.router.iter_mut() {
                        *v = 0.0;
                    }
                    for p in 0..16 {
                        data.router[2 * 16 + p] = 1.0;
                    }
                    for tokens in [1usize, 9] {
                        check_layer(&data, tokens, Router::SoftmaxTopK { k: 1, renormalize: true }, false, 9);
                        check_layer(&data, tokens, Router::Top1Capacity { capacity_factor: 1000.0 }, false, 9);
                    }
                });
            }
        }
    )*};
}

isa_suite! {
    scalar => Isa::Scalar,
    avx2 => Isa::Avx2,
    avx512 => Isa::Avx512,
    neon => Isa::Neon,
}

/// Groups 1 and 2 tie in exact arithmetic: (σ(-3) - 1) + (σ(2) + 0.75)
/// against (σ(2) - 0.25) + (σ(-3) + 0). Keeping group 1 picks expert 3 and
/// keeping group 2 picks expert 7, so both outcomes are correct.
#[test]
fn near_tied_groups_allow_either_side() {
    let row = [0.0, -1.0, -3.0, 2.0, 2.0, -3.0, -0.5, 3.5];
    let bias = [-0.25, 0.5, -1.0, 0.75, -0.25, 0.0, 0.25, 0.25];
    let ids: Vec<Vec<usize>> =
        reference::deepseek_v3_near_ties(&row, &bias, 4, 3, 1, 1.0, GROUP_TIE).into_iter().map(|o| o.0).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, [vec![3], vec![7]], "outcomes {ids:?}");
    // Group 0 (score 1.02) is not near group 1 or 2 (0.68), so it stays.
    let far = reference::deepseek_v3_near_ties(&row, &bias, 4, 2, 2, 1.0, GROUP_TIE);
    assert_eq!(far.len(), 1, "outcomes {far:?}");
    assert_eq!(far[0].0, [7, 1], "best of groups 3 and 0");
}

#[test]
fn load_statistics_match_reference() {
    let (t, e, k) = (50usize, 8usize, 2usize);
    let logits = Rng::new(21).vec(t * e, -3.0, 3.0);
    let mut ids = vec![0i32; t * k];
    let mut w = vec![0.0f32; t * k];
    let mut probs = vec![0.0f32; t * e];
    mlak::route_softmax_topk(&logits, t, e, k, true, &mut ids, &mut w, Some(&mut probs)).unwrap();
    let mut counts = vec![0i64; e];
    let mut mean = vec![0.0f32; e];
    let stats = mlak::load_balance_stats(&ids, &probs, t, e, &mut counts, &mut mean).unwrap();
    let (want_counts, _, _) = reference::layout(&ids, k, e, 1);
    assert_eq!(counts, want_counts, "tokens per expert");
    let mut want_mean = vec![0.0f64; e];
    for r in 0..t {
        for (j, p) in reference::router_probs(&logits[r * e..(r + 1) * e]).into_iter().enumerate() {
            want_mean[j] += p / t as f64;
        }
    }
    for j in 0..e {
        check_close("mean probability", j, mean[j], want_mean[j], 64.0 * EPS * want_mean[j], "load stats");
    }
    let aux = reference::aux_loss(&counts, &want_mean);
    check_close("aux loss", 0, stats.aux_loss, aux, 64.0 * EPS * aux, "load stats");

    let z = mlak::router_z_loss(&logits, t, e).unwrap();
    let want_z = reference::z_loss(&logits, t, e);
    check_close("z-loss", 0, z, want_z, 8.0 * EPS * want_z, "z-loss");
    assert_eq!(mlak::router_z_loss(&[], 0, e).unwrap(), 0.0, "z-loss of no tokens");
    // Uniform routing gives aux loss 1.
    let uniform_ids: Vec<i32> = (0..e as i32).collect();
    let uniform_probs = vec![1.0 / e as f32; e * e];
    let s = mlak::load_balance_stats(&uniform_ids, &uniform_probs, e, e, &mut counts, &mut mean).unwrap();
    assert!((s.aux_loss - 1.0).abs() < 1e-6, "uniform aux loss {}", s.aux_loss);

    let mut bias = vec![0.5f32; 4];
    mlak::update_expert_bias(&mut bias, &[3, 1, 2, 2], 4, 0.25).unwrap();
    assert_eq!(bias, [0.25, 0.75, 0.5, 0.5], "bias update: overloaded down, underloaded up, balanced unchanged");
}

#[test]
fn edge_cases_are_handled() {
    // T = 0 everywhere.
    let layout = MoeLayout::new(&[], 0, 3, 5, 4).unwrap();
    assert_eq!((layout.num_slots(), layout.offsets()), (0, &[0i64; 6][..]), "empty layout");
    mlak::moe_gather::<f32>(&[], 8, 8, &layout, &mut [], 8).unwrap();
    mlak::moe_combine(&[], 8, 8, &layout, &[], &mut [], 8, false).unwrap();
    mlak::route_softmax_topk(&[], 0, 5, 3, true, &mut [], &mut [], None).unwrap();
    let r = mlak::route_top1_capacity(&[], 0, 5, 1.0, &mut [], &mut [], &mut [], None).unwrap();
    assert_eq!((r.capacity, r.dropped), (0, 0), "capacity with no tokens");

    // k = E: every expert gets every token, in order.
    let (t, e) = (5usize, 4usize);
    let logits = Rng::new(2).vec(t * e, -1.0, 1.0);
    let mut ids = vec![0i32; t * e];
    let mut w = vec![0.0f32; t * e];
    mlak::route_softmax_topk(&logits, t, e, e, true, &mut ids, &mut w, None).unwrap();
    let layout = MoeLayout::new(&ids, t, e, e, 1).unwrap();
    assert_eq!(layout.counts(), &[5, 5, 5, 5], "k = E counts");
    for r in 0..t {
        let sum: f32 = w[r * e..(r + 1) * e].iter().sum();
        assert!((sum - 1.0).abs() < 1e-6, "k = E weights of row {r} sum to {sum}");
    }

    // All tokens to one expert, with experts that get nothing, and padding.
    let ids = vec![3i32; 7];
    let layout = MoeLayout::new(&ids, 7, 1, 6, 4).unwrap();
    assert_eq!(layout.counts(), &[0, 0, 0, 7, 0, 0], "one expert counts");
    assert_eq!(layout.offsets(), &[0, 0, 0, 0, 8, 8, 8], "one expert offsets");
    assert_eq!(layout.slot_token(), &[0, 1, 2, 3, 4, 5, 6, -1], "one expert slots");
    assert_eq!(layout.rank_send_counts(3).unwrap(), vec![0, 7, 0], "send counts over 3 ranks");
    assert_eq!(layout.rank_send_counts(6).unwrap(), vec![0, 0, 0, 7, 0, 0], "send counts over 6 ranks");
    assert!(layout.rank_send_counts(4).is_err(), "4 ranks do not divide 6 experts");

    // Capacity above T is clamped to T.
    let mut ids = vec![0i32; 3];
    let mut w = vec![0.0f32; 3];
    let mut dropped = vec![0i64; 3];
    let r = mlak::route_top1_capacity(&[1.0, 0.0, 1.0, 0.0, 1.0, 0.0], 3, 2, 1e6, &mut ids, &mut w, &mut dropped, None).unwrap();
    assert_eq!((r.capacity, r.dropped), (3, 0), "capacity clamps to T");
    let r = mlak::route_top1_capacity(&[1.0, 0.0, 1.0, 0.0, 1.0, 0.0], 3, 2, 0.5, &mut ids, &mut w, &mut dropped, None).unwrap();
    assert_eq!((r.capacity, r.dropped, &dropped[..2], &ids[..]), (1, 2, &[1i64, 2][..], &[0, -1, -1][..]), "capacity 1");
}

#[test]
fn gather_and_combine_use_64_bit_offsets() {
    // Row strides of 2^30 f32 put row 2 at byte 2^33, beyond any 32-bit
    // offset. The buffers come zeroed from the allocator, which maps pages
    // lazily, so only the touched rows take memory.
    let stride = 1usize << 30;
    let d = 16;
    let mut src = vec![0.0f32; 2 * stride + d];
    for c in 0..d {
        src[c] = c as f32;
        src[2 * stride + c] = 100.0 + c as f32;
    }
    let layout = MoeLayout::new(&[1, 1, 0], 3, 1, 2, 1).unwrap();
    assert_eq!(layout.slot_token(), &[2, 0, 1], "slot order");
    let mut dst = vec![0.0f32; 3 * d];
    mlak::moe_gather(&src, stride, d, &layout, &mut dst, d).unwrap();
    assert_eq!(dst[0], 100.0, "row 2 gathered from byte offset 2^33");
    assert_eq!(dst[d + 5], 5.0, "row 0 gathered");
    drop(src);

    let mut out = vec![0.0f32; 2 * stride + d];
    let weights = [2.0f32, 1.0, 1.0];
    mlak::moe_combine(&dst, d, d, &layout, &weights, &mut out, stride, false).unwrap();
    assert_eq!(out[2 * stride + 3], 100.0 + 3.0, "token 2 combined at byte offset 2^33");
    assert_eq!(out[3], 2.0 * 3.0, "token 0 combined");
}

#[test]
fn combine_and_layer_bits_ignore_thread_count() {
    let (t, e, k, d) = (300usize, 16usize, 4usize, 200usize);
    let logits = Rng::new(40).vec(t * e, -2.0, 2.0);
    let mut ids = vec![0i32; t * k];
    let mut w = vec![0.0f32; t * k];
    mlak::route_softmax_topk(&logits, t, e, k, true, &mut ids, &mut w, None).unwrap();
    let layout = MoeLayout::new(&ids, t, k, e, 1).unwrap();
    let y = Rng::new(41).vec(layout.num_slots() * d, -1.0, 1.0);
    let data = LayerData::new(42, 32, 8, 16, 8, false);
    let x = Rng::new(43).vec(40 * 32, -1.0, 1.0);
    let layer = MoeLayer {
        d: 32,
        experts: 8,
        router_weight: &data.router,
        router: Router::SoftmaxTopK { k: 2, renormalize: true },
        expert_ffn: FfnWeights { gate: Weights::F32(&data.gate), up: Weights::F32(&data.up), down: Weights::F32(&data.down), width: 16 },
        shared_ffn: None,
    };
    let mut results = Vec::new();
    for threads in [1usize, 2, 3, 7] {
        mlak::set_num_threads(threads);
        let mut out = vec![0.0f32; t * d];
        mlak::moe_combine(&y, d, d, &layout, &w, &mut out, d, false).unwrap();
        let mut layer_out = vec![0.0f32; 40 * 32];
        mlak::moe_layer(&layer, &x, 40, &mut layer_out).unwrap();
        let bits: Vec<u32> = out.iter().chain(&layer_out).map(|v| v.to_bits()).collect();
        results.push((threads, bits));
    }
    mlak::set_num_threads(0);
    for (threads, bits) in &results[1..] {
        assert!(bits == &results[0].1, "{threads} threads changed the bits of combine or layer");
    }
}

#[test]
fn moe_rejects_bad_arguments() {
    let e = MoeLayout::new(&[0, 5], 2, 1, 4, 1).unwrap_err();
    assert!(e.message().contains("ids[1] = 5"), "{}", e.message());
    assert!(e.message().contains("experts = 4"), "{}", e.message());
    let e = MoeLayout::new(&[0, 1], 2, 1, 4, 0).unwrap_err();
    assert!(e.message().contains("block = 0"), "{}", e.message());
    let mut ids = [0i32; 2];
    let mut w = [0.0f32; 2];
    let e = mlak::route_softmax_topk(&[0.0; 8], 2, 4, 5, true, &mut ids, &mut w, None).unwrap_err();
    assert!(e.message().contains("k = 5"), "{}", e.message());
    let bias = [0.0f32; 6];
    for (groups, topk_group, k, needle) in [(4, 1, 1, "groups = 4"), (3, 4, 1, "topk_group = 4"), (3, 1, 3, "k = 3")] {
        let routing = GroupedRouting { bias: &bias, groups, topk_group, k, routed_scaling_factor: 1.0 };
        let mut ids = [0i32; 3];
        let mut w = [0.0f32; 3];
        let e = mlak::route_grouped_sigmoid(&[0.0; 6], 1, 6, &routing, &mut ids, &mut w, None).unwrap_err();
        assert!(e.message().contains(needle), "{needle}: {}", e.message());
        assert_eq!(ids, [0; 3], "a rejected call wrote ids");
    }
    let bad_bias = [0.0f32, f32::NAN, 0.0, 0.0, 0.0, 0.0];
    let routing = GroupedRouting { bias: &bad_bias, groups: 2, topk_group: 1, k: 1, routed_scaling_factor: 1.0 };
    let e = mlak::route_grouped_sigmoid(&[0.0; 6], 1, 6, &routing, &mut ids[..1], &mut w[..1], None).unwrap_err();
    assert!(e.message().contains("bias[1] = NaN"), "{}", e.message());
    let mut dropped = [0i64; 2];
    let e = mlak::route_top1_capacity(&[0.0; 8], 2, 4, 0.0, &mut ids, &mut w, &mut dropped, None).unwrap_err();
    assert!(e.message().contains("capacity_factor = 0"), "{}", e.message());
    let layout = MoeLayout::new(&[0, 1], 2, 1, 2, 1).unwrap();
    let mut dst = [0.0f32; 3];
    let e = mlak::moe_gather(&[0.0f32; 4], 2, 2, &layout, &mut dst, 2).unwrap_err();
    assert!(e.message().contains("dst has 3 elements but the shape needs 4"), "{}", e.message());
}
