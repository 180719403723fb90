//! Fused attention under every dispatch level against the f64 reference in
//! `mlak::reference::attention`.
//!
//! Tolerance. Each output element is a convex combination of V values, so
//! its error is bounded by max|V| times the error of the probabilities. A
//! probability carries the relative error of its score's exponential: the
//! f32 dot product of D terms costs up to about scale·Σ|q·k|·D·EPS in the
//! worst case and sqrt(D)·EPS in practice; the scaling of Q, the vector exp
//! (2 ulp), the softcap formula (a few c·EPS absolute) and the online
//! rescaling add a few EPS of the score magnitude each. The row sum grows
//! like the number of keys. The bound used is
//! `max|V|·EPS·(64 + 8·|s|max + 2·scale·Σ|q|·|k|max + 0.02·keys)`, with
//! margin over these terms while far below the error of any wrong key,
//! mask or weight (a misplaced key moves the output by about max|V|/keys).
//! The logsumexp gets the same score terms in absolute units.

mod common;

use common::{assert_ran, cases, on_isa, Rng, EPS};
use half::{bf16, f16};
use mlak::reference::attention as reference;
use mlak::{AttentionArgs, AttentionOptions, AttentionShape, Dtype, Isa, KvSlice};
use proptest::prelude::*;

/// K and V storage in one of the element types.
#[derive(Clone, Debug)]
enum KvBuf {
    F32(Vec<f32>),
    F16(Vec<f16>),
    Bf16(Vec<bf16>),
}

impl KvBuf {
    fn from_f32(dtype: Dtype, x: &[f32]) -> KvBuf {
        match dtype {
            Dtype::F32 => KvBuf::F32(x.to_vec()),
            Dtype::F16 => KvBuf::F16(x.iter().map(|&v| f16::from_f32(v)).collect()),
            Dtype::Bf16 => KvBuf::Bf16(x.iter().map(|&v| bf16::from_f32(v)).collect()),
        }
    }
    fn slice(&self) -> KvSlice<'_> {
        match self {
            KvBuf::F32(x) => KvSlice::F32(x),
            KvBuf::F16(x) => KvSlice::F16(x),
            KvBuf::Bf16(x) => KvSlice::Bf16(x),
        }
    }
    fn set(&mut self, i: usize, v: f32) {
        match self {
            KvBuf::F32(x) => x[i] = v,
            KvBuf::F16(x) => x[i] = f16::from_f32(v),
            KvBuf::Bf16(x) => x[i] = bf16::from_f32(v),
        }
    }
    fn get(&self, i: usize) -> f32 {
        match self {
            KvBuf::F32(x) => x[i],
            KvBuf::F16(x) => x[i].to_f32(),
            KvBuf::Bf16(x) => x[i].to_f32(),
        }
    }
}

/// Strides of dims `d` with each inner dimension padded by `pad` elements
/// and the last one contiguous.
fn padded_strides(d: [usize; 4], pad: usize) -> [usize; 4] {
    let s2 = d[3] + pad;
    let s1 = d[2] * s2 + pad;
    let s0 = d[1] * s1 + pad;
    [s0, s1, s2, 1]
}

fn span(d: [usize; 4], s: [usize; 4]) -> usize {
    if d.contains(&0) {
        return 0;
    }
    (0..4).map(|i| (d[i] - 1) * s[i]).sum::<usize>() + 1
}

/// One fully described call, with owned buffers.
#[derive(Clone, Debug)]
struct Case {
    shape: AttentionShape,
    options: AttentionOptions,
    q: Vec<f32>,
    q_strides: [usize; 4],
    k: KvBuf,
    k_strides: [usize; 4],
    v: KvBuf,
    v_strides: [usize; 4],
    kv_lengths: Option<Vec<usize>>,
    bias: Option<Vec<f32>>,
    bias_strides: [usize; 4],
    alibi: Option<Vec<f32>>,
    o_strides: [usize; 4],
}

/// Extras of a generated case beyond the shape.
#[derive(Clone, Copy, Debug)]
struct Extras {
    dtype: Dtype,
    pad: usize,
    kv_lengths: bool,
    bias: bool,
    bias_broadcast: bool,
    alibi: bool,
    seed: u64,
}

impl Case {
    fn new(shape: AttentionShape, options: AttentionOptions, x: Extras) -> Case {
        let mut rng = Rng::new(x.seed);
        let qd = [shape.batch, shape.q_heads, shape.q_len, shape.head_dim];
        let kd = [shape.batch, shape.kv_heads, shape.kv_len, shape.head_dim];
        let vd = [shape.batch, shape.kv_heads, shape.kv_len, shape.v_head_dim];
        let od = [shape.batch, shape.q_heads, shape.q_len, shape.v_head_dim];
        let (q_strides, k_strides) = (padded_strides(qd, x.pad), padded_strides(kd, (x.pad + 1) % 4));
        let (v_strides, o_strides) = (padded_strides(vd, x.pad), padded_strides(od, (x.pad + 2) % 4));
        let q = rng.vec(span(qd, q_strides), -1.0, 1.0);
        let k = KvBuf::from_f32(x.dtype, &rng.vec(span(kd, k_strides), -1.0, 1.0));
        let v = KvBuf::from_f32(x.dtype, &rng.vec(span(vd, v_strides), -1.0, 1.0));
        let kv_lengths = x
            .kv_lengths
            .then(|| (0..shape.batch).map(|_| (rng.next_u64() % (shape.kv_len as u64 + 1)) as usize).collect());
        let bd = [shape.batch, shape.q_heads, shape.q_len, shape.kv_len];
        let bias_strides = if x.bias_broadcast {
            let full = padded_strides(bd, x.pad);
            [0, 0, full[2], 1]
        } else {
            padded_strides(bd, x.pad)
        };
        let bias = x.bias.then(|| rng.vec(span(bd, bias_strides), -2.0, 2.0));
        let alibi = x.alibi.then(|| (0..shape.q_heads).map(|h| 0.5f32.powi(h as i32 % 8 + 1)).collect());
        Case {
            shape,
            options,
            q,
            q_strides,
            k,
            k_strides,
            v,
            v_strides,
            kv_lengths,
            bias,
            bias_strides,
            alibi,
            o_strides,
        }
    }

    fn args(&self) -> AttentionArgs<'_> {
        AttentionArgs {
            shape: self.shape,
            q: &self.q,
            q_strides: self.q_strides,
            k: self.k.slice(),
            k_strides: self.k_strides,
            v: self.v.slice(),
            v_strides: self.v_strides,
            options: self.options,
            kv_lengths: self.kv_lengths.as_deref(),
            bias: self.bias.as_deref(),
            bias_strides: self.bias_strides,
            alibi_slopes: self.alibi.as_deref(),
        }
    }

    /// Runs the kernel; returns O (at `o_strides`, NaN-filled between
    /// rows) and lse.
    fn run(&self) -> (Vec<f32>, Vec<f32>) {
        let od = [self.shape.batch, self.shape.q_heads, self.shape.q_len, self.shape.v_head_dim];
        let mut o = vec![f32::NAN; span(od, self.o_strides)];
        let mut lse = vec![f32::NAN; self.shape.lse_len()];
        mlak::attention(&self.args(), &mut o, self.o_strides, Some(&mut lse)).unwrap();
        (o, lse)
    }

    /// Runs the kernel and compares every output with the reference.
    fn check(&self, isa: Isa) {
        let (o, lse) = self.run();
        if self.shape.lse_len() > 0 {
            assert_ran(isa);
        }
        let want = reference::attention(&self.args());
        let sh = self.shape;
        let tol_scores = self.score_tolerance();
        let vmax = self.v_max();
        let what =
            format!("{:?} {:?} dtype {:?} kv_lengths {:?}", sh, self.options, dtype_of(&self.k), self.kv_lengths);
        for b in 0..sh.batch {
            for h in 0..sh.q_heads {
                for i in 0..sh.q_len {
                    let row = (b * sh.q_heads + h) * sh.q_len + i;
                    let (g, w) = (lse[row] as f64, want.lse[row]);
                    let lse_tol = tol_scores + 8.0 * EPS * w.abs();
                    let ok = (g - w).abs() <= lse_tol || g == w || (g.is_nan() && w.is_nan());
                    assert!(ok, "lse b={b} h={h} i={i}: got {g:e}, want {w:e}, tol {lse_tol:e}, {what}");
                    let keys = sh.kv_len as f64;
                    let tol = vmax * (tol_scores + EPS * (64.0 + 0.02 * keys));
                    for d in 0..sh.v_head_dim {
                        let os = self.o_strides;
                        let g = o[b * os[0] + h * os[1] + i * os[2] + d] as f64;
                        let w = want.o[row * sh.v_head_dim + d];
                        let ok = (g - w).abs() <= tol || (g.is_nan() && w.is_nan());
                        assert!(ok, "o b={b} h={h} i={i} d={d}: got {g:e}, want {w:e}, tol {tol:e}, {what}");
                    }
                }
            }
        }
    }

    fn v_max(&self) -> f64 {
        let n = span([self.shape.batch, self.shape.kv_heads, self.shape.kv_len, self.shape.v_head_dim], self.v_strides);
        (0..n).map(|i| self.v.get(i).abs() as f64).filter(|v| v.is_finite()).fold(1e-30, f64::max)
    }

    /// Absolute score error bound; see the module comment.
    fn score_tolerance(&self) -> f64 {
        let o = &self.options;
        let qmax = self.q.iter().map(|v| v.abs() as f64).filter(|v| v.is_finite()).fold(0.0, f64::max);
        let kn = span([self.shape.batch, self.shape.kv_heads, self.shape.kv_len, self.shape.head_dim], self.k_strides);
        let kmax = (0..kn).map(|i| self.k.get(i).abs() as f64).filter(|v| v.is_finite()).fold(0.0, f64::max);
        let dot = o.scale.abs() as f64 * self.shape.head_dim as f64 * qmax * kmax;
        let bias = self.bias.as_ref().map_or(0.0, |b| b.iter().fold(0.0f64, |m, &v| m.max(v.abs() as f64)));
        let alibi = self.alibi.as_ref().map_or(0.0, |s| s.iter().fold(0.0f64, |m, &v| m.max(v as f64)))
            * (self.shape.kv_len + self.shape.q_len) as f64;
        let smax = if o.softcap > 0.0 { o.softcap as f64 } else { dot } + bias + alibi;
        EPS * (8.0 * smax + 2.0 * dot + 8.0 * o.softcap as f64)
    }
}

fn dtype_of(k: &KvBuf) -> Dtype {
    match k {
        KvBuf::F32(_) => Dtype::F32,
        KvBuf::F16(_) => Dtype::F16,
        KvBuf::Bf16(_) => Dtype::Bf16,
    }
}

fn shape(
    batch: usize,
    q_heads: usize,
    kv_heads: usize,
    q_len: usize,
    kv_len: usize,
    d: usize,
    dv: usize,
) -> AttentionShape {
    AttentionShape { batch, q_heads, kv_heads, q_len, kv_len, head_dim: d, v_head_dim: dv }
}

fn extras(dtype: Dtype, seed: u64) -> Extras {
    Extras { dtype, pad: 0, kv_lengths: false, bias: false, bias_broadcast: false, alibi: false, seed }
}

fn scaled(d: usize) -> AttentionOptions {
    AttentionOptions { scale: 1.0 / (d as f32).sqrt(), ..AttentionOptions::default() }
}

fn dtype_strategy() -> impl Strategy<Value = Dtype> {
    prop_oneof![Just(Dtype::F32), Just(Dtype::F16), Just(Dtype::Bf16)]
}

/// Random cases: 1 to 2 batches, 1 to 3 KV heads with group sizes 1, 2, 3
/// and 8, query lengths 0 to 70 (decode and prefill paths, partial tiles),
/// key lengths 0 to 150 (partial 64-key blocks), head dims 1 to 70 and
/// every mask and modifier, each on or off.
fn case_strategy() -> impl Strategy<Value = Case> {
    let dims = (1usize..3, 1usize..4, prop_oneof![Just(1usize), Just(2), Just(3), Just(8)], 0usize..71, 0usize..151);
    let heads = (1usize..71, prop_oneof![Just(None), (1usize..71).prop_map(Some)]);
    let opts = (
        any::<bool>(),
        -3i64..4,
        prop_oneof![3 => Just(0usize), 1 => 1usize..40],
        prop_oneof![Just(0.0f32), Just(4.0)],
    );
    let extra = (dtype_strategy(), 0usize..3, any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), any::<u64>());
    (dims, heads, opts, extra).prop_map(|((b, hkv, g, lq, lkv), (d, dv), (causal, offset, window, softcap), x)| {
        let sh = shape(b, hkv * g, hkv, lq, lkv, d, dv.unwrap_or(d));
        let options = AttentionOptions { causal, position_offset: offset, window, softcap, ..scaled(d) };
        let (dtype, pad, kv_lengths, bias, bias_broadcast, alibi, seed) = x;
        Case::new(sh, options, Extras { dtype, pad, kv_lengths, bias, bias_broadcast, alibi, seed })
    })
}

macro_rules! isa_suite {
    ($($module:ident => $isa:expr),* $(,)?) => {$(
        mod $module {
            use super::*;
            const ISA: Isa = $isa;

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(cases(32)))]

                #[test]
                fn attention_matches_reference(case in case_strategy()) {
                    on_isa(ISA, || case.check(ISA));
                }
            }

            #[test]
            fn every_dtype_and_group_ratio() {
                on_isa(ISA, || {
                    for (n, dtype) in [Dtype::F32, Dtype::F16, Dtype::Bf16].into_iter().enumerate() {
                        for (g, hkv) in [(1, 2), (2, 2), (4, 2), (8, 1), (16, 1)] {
                            for (lq, lkv) in [(1, 200), (3, 130), (37, 100)] {
                                let sh = shape(1, g * hkv, hkv, lq, lkv, 64, 64);
                                let o = AttentionOptions { causal: lq > 1, ..scaled(64) };
                                Case::new(sh, o, extras(dtype, 31 * n as u64 + g as u64)).check(ISA);
                            }
                        }
                    }
                });
            }

            #[test]
            fn large_head_dims() {
                on_isa(ISA, || {
                    for (d, dv, lq) in [(256, 256, 1), (256, 256, 20), (576, 512, 2), (576, 512, 13), (17, 33, 9), (5, 3, 50)] {
                        let sh = shape(1, 2, 1, lq, 70, d, dv);
                        let o = AttentionOptions { causal: true, ..scaled(d) };
                        Case::new(sh, o, extras(Dtype::F16, d as u64)).check(ISA);
                        Case::new(sh, scaled(d), extras(Dtype::F32, dv as u64)).check(ISA);
                    }
                });
            }

            #[test]
            fn split_kv_decode() {
                on_isa(ISA, || {
                    mlak::set_num_threads(4);
                    for (lq, lkv, dtype) in [(1, 3000, Dtype::F32), (2, 2100, Dtype::F16), (1, 1500, Dtype::Bf16)] {
                        let sh = shape(1, 4, 1, lq, lkv, 64, 64);
                        let mut x = extras(dtype, lkv as u64);
                        x.alibi = true;
                        let o = AttentionOptions { causal: true, window: 1200, ..scaled(64) };
                        Case::new(sh, o, x).check(ISA);
                        Case::new(sh, scaled(64), extras(dtype, 5)).check(ISA);
                    }
                    mlak::set_num_threads(0);
                });
            }

            #[test]
            fn causal_longer_queries_give_zero_rows() {
                on_isa(ISA, || {
                    for lq in [5, 30] {
                        let sh = shape(1, 2, 2, lq, 3, 16, 16);
                        let case = Case::new(sh, AttentionOptions { causal: true, ..scaled(16) }, extras(Dtype::F32, 9));
                        case.check(ISA);
                        let (o, lse) = case.run();
                        for h in 0..2 {
                            for i in 0..lq - 3 {
                                let row = h * lq + i;
                                assert_eq!(lse[row], f32::NEG_INFINITY, "lse of masked row h={h} i={i}, lq={lq}");
                                let start = h * case.o_strides[1] + i * case.o_strides[2];
                                assert!(o[start..start + 16].iter().all(|&v| v == 0.0), "masked row h={h} i={i} not zero");
                            }
                        }
                    }
                });
            }

            #[test]
            fn empty_lengths() {
                on_isa(ISA, || {
                    for (lq, lkv) in [(0, 10), (4, 0), (0, 0), (20, 0)] {
                        let sh = shape(2, 2, 1, lq, lkv, 8, 8);
                        let case = Case::new(sh, scaled(8), extras(Dtype::F32, 2));
                        case.check(ISA);
                        let (o, lse) = case.run();
                        if lkv == 0 {
                            assert!(lse.iter().all(|&v| v == f32::NEG_INFINITY), "lq={lq} lkv=0: lse {lse:?}");
                        let os = case.o_strides;
                        for (b, h, i, d) in (0..2).flat_map(|b| (0..2).flat_map(move |h| (0..lq).flat_map(move |i| (0..8).map(move |d| (b, h, i, d))))) {
                            let v = o[b * os[0] + h * os[1] + i * os[2] + d];
                            assert_eq!(v, 0.0, "lq={lq} lkv=0: o[{b}, {h}, {i}, {d}]");
                        }
                        }
                    }
                });
            }

            #[test]
            fn unused_cache_slots_never_read() {
                on_isa(ISA, || {
                    for dtype in [Dtype::F32, Dtype::F16, Dtype::Bf16] {
                        for lq in [1, 3, 40] {
                            let sh = shape(3, 4, 2, lq, 150, 24, 24);
                            let mut x = extras(dtype, 4);
                            x.kv_lengths = true;
                            let mut case = Case::new(sh, AttentionOptions { causal: true, window: 50, ..scaled(24) }, x);
                            case.kv_lengths = Some(vec![150, 70, 0]);
                            // Poison every K and V element at or past each batch's
                            // length, and every key older than the window of the
                            // first query.
                            for b in 0..3 {
                                let len = case.kv_lengths.as_ref().unwrap()[b];
                                let first_pos = len as i64 - lq as i64;
                                for h in 0..2 {
                                    for j in 0..150 {
                                        let unused = j >= len || (j as i64) <= first_pos - 50;
                                        if !unused {
                                            continue;
                                        }
                                        for d in 0..24 {
                                            let (ks, vs) = (case.k_strides, case.v_strides);
                                            case.k.set(b * ks[0] + h * ks[1] + j * ks[2] + d, f32::NAN);
                                            case.v.set(b * vs[0] + h * vs[1] + j * vs[2] + d, f32::NAN);
                                        }
                                    }
                                }
                            }
                            case.check(ISA);
                            let (o, _) = case.run();
                            let os = case.o_strides;
                            for b in 0..3 {
                                for h in 0..4 {
                                    for i in 0..lq {
                                        let start = b * os[0] + h * os[1] + i * os[2];
                                        let row = &o[start..start + 24];
                                        assert!(row.iter().all(|v| v.is_finite()), "NaN leaked into b={b} h={h} i={i}, {dtype:?}");
                                    }
                                }
                            }
                        }
                    }
                });
            }

            #[test]
            fn nan_in_used_values_propagates() {
                on_isa(ISA, || {
                    for lq in [2, 20] {
                        let sh = shape(1, 2, 1, lq, 90, 16, 16);
                        let base = Case::new(sh, scaled(16), extras(Dtype::F32, 8));
                        // NaN in query row 1 of head 0.
                        let mut case = base.clone();
                        case.q[case.q_strides[2] + 3] = f32::NAN;
                        case.check(ISA);
                        let (o, lse) = case.run();
                        assert!(lse[1].is_nan(), "NaN in q did not reach its logsumexp");
                        assert!(o[case.o_strides[2]].is_nan(), "NaN in q did not reach its output row");
                        assert!(lse[0].is_finite(), "NaN in q reached another row");
                        // NaN in one used key: every row attends it without a mask.
                        let mut case = base.clone();
                        case.k.set(70 * case.k_strides[2] + 2, f32::NAN);
                        case.check(ISA);
                        let (_, lse) = case.run();
                        assert!(lse.iter().all(|v| v.is_nan()), "NaN in a used key did not propagate: {lse:?}");
                        // NaN in one used V row.
                        let mut case = base.clone();
                        case.v.set(10 * case.v_strides[2] + 5, f32::NAN);
                        case.check(ISA);
                    }
                });
            }

            #[test]
            fn full_blocks_rescale_and_nan() {
                on_isa(ISA, || {
                    for (n, dtype) in [Dtype::F32, Dtype::F16, Dtype::Bf16].into_iter().enumerate() {
                        // Four full 64-key blocks and a partial one, at one and
                        // two positions of a group of four query heads.
                        for lq in [1, 2] {
                            let sh = shape(1, 8, 2, lq, 300, 32, 32);
                            let base = Case::new(sh, scaled(32), extras(dtype, 40 + n as u64));
                            base.check(ISA);
                            // K scaled up block by block makes the running maximum
                            // grow in every block. Scaled down, the maximum stays.
                            for grow in [true, false] {
                                let mut case = base.clone();
                                let ks = case.k_strides;
                                for h in 0..2 {
                                    for j in 0..300 {
                                        let block = (j / 64) as f32;
                                        let factor = if grow { 1.0 + block } else { 4.0 / (1.0 + block) };
                                        for d in 0..32 {
                                            let i = h * ks[1] + j * ks[2] + d;
                                            let v = case.k.get(i);
                                            case.k.set(i, v * factor);
                                        }
                                    }
                                }
                                case.check(ISA);
                            }
                            // NaN in a key of the third full block of KV head 0.
                            let mut case = base.clone();
                            case.k.set(150 * case.k_strides[2] + 3, f32::NAN);
                            case.check(ISA);
                            let (_, lse) = case.run();
                            for h in 0..8 {
                                for i in 0..lq {
                                    let v = lse[h * lq + i];
                                    if h < 4 {
                                        assert!(v.is_nan(), "lse h={h} i={i} = {v}: NaN key did not propagate, {dtype:?}");
                                    } else {
                                        assert!(v.is_finite(), "lse h={h} i={i} = {v}: NaN reached KV head 1, {dtype:?}");
                                    }
                                }
                            }
                        }
                    }
                });
            }

            #[test]
            fn packed_key_reuse_across_tasks_and_calls() {
                on_isa(ISA, || {
                    // 420 query rows make 3 prefill tasks per KV head, and the
                    // later ones may take the Kᵀ blocks that earlier ones of
                    // the same thread packed.
                    for threads in [1, 3] {
                        mlak::set_num_threads(threads);
                        for (n, dtype) in [Dtype::F32, Dtype::F16, Dtype::Bf16].into_iter().enumerate() {
                            // A window of 100 starts blocks off the 64-key grid.
                            for (causal, window) in [(true, 0), (true, 100), (false, 77)] {
                                let sh = shape(2, 1, 1, 420, 430, 12, 8);
                                let x = Extras { kv_lengths: n == 1, ..extras(dtype, 300 + n as u64) };
                                let o = AttentionOptions { causal, window, ..scaled(12) };
                                let mut case = Case::new(sh, o, x);
                                case.check(ISA);
                                // New K values at the same addresses: this call must
                                // repack what the last one packed there.
                                let n_k = span([2, 1, 430, 12], case.k_strides);
                                for i in 0..n_k {
                                    let v = case.k.get(i);
                                    case.k.set(i, 0.1 - 2.0 * v);
                                }
                                case.check(ISA);
                                // Both batches read one K (stride 0), so their tasks
                                // share K addresses and blocks.
                                case.k_strides[0] = 0;
                                case.check(ISA);
                            }
                        }
                    }
                    mlak::set_num_threads(0);
                });
            }

            #[test]
            fn masks_and_modifiers() {
                on_isa(ISA, || {
                    let mut seed = 100;
                    for lq in [1, 6, 33, 64] {
                        for (causal, window, offset) in [(true, 0, 0), (true, 17, 0), (false, 9, 0), (true, 0, -5), (true, 0, 7), (false, 0, 0)] {
                            for (bias, broadcast, alibi, softcap) in [(true, false, false, 0.0), (true, true, true, 0.0), (false, false, true, 3.0), (false, false, false, 1.0)] {
                                seed += 1;
                                let sh = shape(2, 3, 1, lq, 97, 20, 20);
                                let x = Extras { dtype: Dtype::F32, pad: 1, kv_lengths: seed % 2 == 0, bias, bias_broadcast: broadcast, alibi, seed };
                                let o = AttentionOptions { causal, window, position_offset: offset, softcap, ..scaled(20) };
                                Case::new(sh, o, x).check(ISA);
                            }
                        }
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

fn small_case() -> Case {
    Case::new(shape(1, 4, 2, 3, 5, 8, 8), scaled(8), extras(Dtype::F32, 1))
}

fn expect_error(case: &Case, o_strides: [usize; 4], needle: &str) {
    let mut o = vec![0.0f32; 1000];
    let e = mlak::attention(&case.args(), &mut o, o_strides, None).unwrap_err();
    assert!(e.message().contains(needle), "expected {needle:?} in {:?}", e.message());
    assert!(o.iter().all(|&v| v == 0.0), "a rejected call wrote its output");
}

#[test]
fn attention_rejects_bad_arguments() {
    let case = small_case();
    let os = case.o_strides;

    let mut c = case.clone();
    c.shape.q_heads = 3;
    expect_error(&c, os, "not a multiple of kv_heads");

    let mut c = case.clone();
    c.k_strides[3] = 2;
    expect_error(&c, os, "k_strides[3] = 2");

    expect_error(&case, [0, 0, 8, 1], "share an address");
    expect_error(&case, [os[0], os[1], os[2], 3], "o_strides[3] = 3");

    let mut c = case.clone();
    c.kv_lengths = Some(vec![6]);
    expect_error(&c, os, "kv_lengths[0] = 6 exceeds kv_len = 5");

    let mut c = case.clone();
    c.v = KvBuf::from_f32(Dtype::F16, &[0.0; 100]);
    expect_error(&c, os, "they must have the same dtype");

    let mut c = case.clone();
    c.q.truncate(10);
    expect_error(&c, os, "q has 10 elements");

    let mut c = case.clone();
    c.options.scale = f32::NAN;
    expect_error(&c, os, "scale = NaN");

    let mut c = case.clone();
    c.options.softcap = -1.0;
    expect_error(&c, os, "softcap = -1");

    let mut c = case.clone();
    c.shape.head_dim = 0;
    expect_error(&c, os, "head_dim = 0");
}
