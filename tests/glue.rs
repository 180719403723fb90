//! Glue kernels (LayerNorm, RMSNorm, GELU, SiLU, SwiGLU, bias add, erf,
//! tanh, RoPE) under every dispatch level, against the f64 references in
//! `mlak::reference::glue`.
//!
//! Tolerances are in units of f32 epsilon (EPS) and are stated next to each
//! check. The common sources: every f32 operation rounds once (EPS/2);
//! sums of n terms over a few partial sums carry a relative error that
//! grows like sqrt(n)·EPS in practice and is bounded here by
//! (8 + 0.01·n)·EPS, as in the softmax suite; the vector exp is within
//! 2 ulp.

mod common;

use common::{assert_ran, cases, on_isa, Rng, Unaligned, EPS};
use mlak::reference::glue as reference;
use mlak::{Activation, Isa, NormParams, RopeLayout, RopeParams};
use mlak_kernels::simd::special::{ERF_MAX_ABS_ERROR, TANH_MAX_ABS_ERROR, TANH_MAX_REL_ERROR};
use proptest::prelude::*;

fn shape(rows: usize, n: usize, stride: usize, offset: usize) -> String {
    format!("shape rows={rows} n={n} stride={stride} offset={offset}")
}

/// Cases: 0 to 4 rows of 0 to 150 entries (every unroll and tail edge of
/// 1, 4, 8 and 16 lanes), strides up to n + 3 and data pointers misaligned
/// by 0 to 2 elements. Values are uniform in (-magnitude, magnitude).
fn row_case(magnitude: f32) -> impl Strategy<Value = (usize, usize, usize, usize, Vec<f32>)> {
    (0usize..5, 0usize..151, 0usize..4, 0usize..3).prop_flat_map(move |(rows, n, pad, offset)| {
        let stride = n + pad;
        let len = if rows == 0 { 0 } else { (rows - 1) * stride + n };
        (Just(rows), Just(n), Just(stride), Just(offset), proptest::collection::vec(-magnitude..magnitude, len))
    })
}

/// Checks one LayerNorm or RMSNorm output row against the reference.
///
/// Error budget of an output value y = d·rstd·g + b, with d = h − mean:
/// - rstd carries the relative error of the variance sum, (8 + 0.01·n)·EPS,
///   and so does every d·rstd·g;
/// - the mean carries an absolute error of about (1 + 0.01·n)·EPS·mean|h|,
///   and h itself one rounding of EPS·|h| when a residual is added; both
///   shift d and reach the output scaled by rstd·|g|;
/// - the final FMA rounds once more, relative to |y| + |b|.
#[allow(clippy::too_many_arguments)]
fn check_norm_row(got: &[f32], want: &[f64], h: &[f64], gamma: Option<&[f32]>, beta: Option<&[f32]>, rstd: f64, r: usize, s: &str) {
    let n = want.len();
    let mean_abs = h.iter().map(|v| v.abs()).sum::<f64>() / n.max(1) as f64;
    for i in 0..n {
        let g = gamma.map_or(1.0, |g| g[i] as f64).abs();
        let b = beta.map_or(0.0, |b| b[i] as f64).abs();
        let w = want[i];
        let tol = EPS * ((8.0 + 0.01 * n as f64) * (w.abs() + b) + (2.0 + 0.01 * n as f64) * (h[i].abs() + mean_abs) * rstd * g)
            + 1e-30;
        let ok = (got[i] as f64 - w).abs() <= tol || (got[i].is_nan() && w.is_nan());
        assert!(ok, "row {r} index {i}: got {:e}, want {w:e}, tol {tol:e}, {s}", got[i]);
    }
}

/// Options of one norm case: residual, stored sum, gamma, beta, eps.
fn norm_options() -> impl Strategy<Value = (bool, bool, bool, bool, f32)> {
    (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), prop_oneof![Just(1e-5f32), Just(1e-12), Just(0.1)])
}

/// Runs one norm case through the safe API and checks y and the sum.
#[allow(clippy::too_many_arguments)]
fn run_norm_case(
    isa: Isa,
    rms: bool,
    rows: usize,
    n: usize,
    stride: usize,
    offset: usize,
    data: &[f32],
    opts: (bool, bool, bool, bool, f32),
) {
    let (with_residual, with_sum, with_gamma, with_beta, eps) = opts;
    let mut rng = Rng::new((rows * 1000 + n) as u64);
    let residual = rng.vec(data.len(), -3.0, 3.0);
    let gamma = rng.vec(n, 0.5, 2.0);
    let beta = rng.vec(n, -1.0, 1.0);
    let with_beta = with_beta && !rms;
    let params = NormParams {
        gamma: with_gamma.then_some(&gamma[..]),
        beta: with_beta.then_some(&beta[..]),
        eps,
    };
    let x = Unaligned::from_slice(data, offset);
    let mut y = Unaligned::new(data.len(), offset + 1, f32::NAN);
    let mut sum = vec![f32::NAN; data.len()];
    let s = format!("{} residual={with_residual} sum={with_sum} eps={eps}", shape(rows, n, stride, offset));
    match (rms, with_residual) {
        (false, false) => mlak::layernorm(x.as_ref(), stride, y.as_mut(), stride, rows, n, &params).unwrap(),
        (true, false) => mlak::rmsnorm(x.as_ref(), stride, y.as_mut(), stride, rows, n, &params).unwrap(),
        (false, true) => {
            let sum_arg = with_sum.then_some((&mut sum[..], stride));
            mlak::add_layernorm(x.as_ref(), stride, &residual, stride, sum_arg, y.as_mut(), stride, rows, n, &params)
                .unwrap()
        }
        (true, true) => {
            let sum_arg = with_sum.then_some((&mut sum[..], stride));
            mlak::add_rmsnorm(x.as_ref(), stride, &residual, stride, sum_arg, y.as_mut(), stride, rows, n, &params)
                .unwrap()
        }
    }
    if rows * n > 0 {
        assert_ran(isa);
    }
    for r in 0..rows {
        let span = r * stride..r * stride + n;
        let row = &data[span.clone()];
        let res = with_residual.then(|| &residual[span.clone()]);
        let h: Vec<f64> = row.iter().enumerate().map(|(i, &v)| v as f64 + res.map_or(0.0, |q| q[i] as f64)).collect();
        let (want, rstd) = if rms {
            let ms = h.iter().map(|v| v * v).sum::<f64>() / n as f64;
            (reference::rmsnorm(row, res, params.gamma, eps as f64), 1.0 / (ms + eps as f64).sqrt())
        } else {
            let mean = h.iter().sum::<f64>() / n as f64;
            let var = h.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
            (reference::layernorm(row, res, params.gamma, params.beta, eps as f64), 1.0 / (var + eps as f64).sqrt())
        };
        check_norm_row(&y.as_ref()[span.clone()], &want, &h, params.gamma, params.beta, rstd, r, &s);
        if with_residual && with_sum {
            for (i, (&g, &w)) in sum[span.clone()].iter().zip(&h).enumerate() {
                // One f32 addition: half an ulp of the exact sum.
                assert!((g as f64 - w).abs() <= 0.5 * EPS * w.abs(), "sum row {r} index {i}: got {g:e}, want {w:e}, {s}");
            }
        }
    }
}

/// Checks an element-wise activation row: |got − want| <= tol(x, want).
fn check_map(name: &str, got: &[f32], x: &[f32], want: impl Fn(f32) -> f64, tol: impl Fn(f32, f64) -> f64, s: &str) {
    for (i, (&g, &v)) in got.iter().zip(x).enumerate() {
        let w = want(v);
        let t = tol(v, w);
        let ok = (g as f64 - w).abs() <= t || (g.is_nan() && w.is_nan()) || g as f64 == w;
        assert!(ok, "{name} index {i}: x = {v:e}, got {g:e}, want {w:e}, tol {t:e}, {s}");
    }
}

/// GELU (erf) tolerance: Φ(x) for x < 0 is erfc(u)/2 with u = |x|/√2, and
/// rounding u by EPS/2 moves ln erfc(u) by about u²·EPS = (x²/2)·EPS, so
/// the relative error grows like x²·EPS/2 in the lower tail (x² EPS leaves
/// a factor 2 of margin); 8 EPS covers the polynomial fits
/// (below 5e-9), the exp and the final products. The absolute term
/// absorbs results below |x|·e^-87.3, which the exp flushes to 0.
fn gelu_erf_tol(x: f32, want: f64) -> f64 {
    EPS * (8.0 + (x as f64).powi(2)) * want.abs() + 2e-38 * (x as f64).abs().max(1.0)
}

/// GELU (tanh) and SiLU tolerance: x·sigmoid(z) with z formed in f32
/// (relative error a few EPS, so an absolute error of a few EPS·|z| in the
/// exponent), plus the exp and the division. Absolute term as for
/// [`gelu_erf_tol`].
fn sigmoid_tol(z: f64) -> impl Fn(f32, f64) -> f64 {
    move |x, want| EPS * (8.0 + 4.0 * z.abs()) * want.abs() + 2e-38 * (x as f64).abs().max(1.0)
}

fn gelu_tanh_arg(x: f32) -> f64 {
    let x = x as f64;
    2.0 * (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)
}

macro_rules! isa_suite {
    ($($module:ident => $isa:expr),* $(,)?) => {$(
        mod $module {
            use super::*;
            const ISA: Isa = $isa;

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(cases(48)))]

                #[test]
                fn layernorm_matches_reference(case in row_case(10.0), opts in norm_options()) {
                    let (rows, n, stride, offset, data) = case;
                    on_isa(ISA, || run_norm_case(ISA, false, rows, n, stride, offset, &data, opts));
                }

                #[test]
                fn rmsnorm_matches_reference(case in row_case(10.0), opts in norm_options()) {
                    let (rows, n, stride, offset, data) = case;
                    on_isa(ISA, || run_norm_case(ISA, true, rows, n, stride, offset, &data, opts));
                }

                #[test]
                fn activations_match_reference(case in row_case(12.0)) {
                    let (rows, n, stride, offset, data) = case;
                    on_isa(ISA, || {
                        let x = Unaligned::from_slice(&data, offset);
                        let s = shape(rows, n, stride, offset);
                        for act in [Activation::GeluErf, Activation::GeluTanh, Activation::Silu] {
                            let mut y = Unaligned::new(data.len(), offset + 1, f32::NAN);
                            mlak::activate(act, x.as_ref(), stride, y.as_mut(), stride, rows, n).unwrap();
                            if rows * n > 0 {
                                assert_ran(ISA);
                            }
                            for r in 0..rows {
                                let span = r * stride..r * stride + n;
                                let (got, xs) = (&y.as_ref()[span.clone()], &data[span]);
                                match act {
                                    Activation::GeluErf => check_map("gelu_erf", got, xs, reference::gelu_erf, gelu_erf_tol, &s),
                                    Activation::GeluTanh => check_map("gelu_tanh", got, xs, reference::gelu_tanh,
                                        |x, w| sigmoid_tol(gelu_tanh_arg(x))(x, w), &s),
                                    Activation::Silu => check_map("silu", got, xs, reference::silu,
                                        |x, w| sigmoid_tol(x as f64)(x, w), &s),
                                }
                            }
                        }
                    });
                }

                #[test]
                fn swiglu_and_bias_add_match_reference(case in row_case(12.0)) {
                    let (rows, n, stride, offset, data) = case;
                    on_isa(ISA, || {
                        let up = Rng::new(n as u64 + 5).vec(data.len(), -4.0, 4.0);
                        let bias = Rng::new(n as u64 + 9).vec(n, -4.0, 4.0);
                        let gate = Unaligned::from_slice(&data, offset);
                        let mut y = Unaligned::new(data.len(), offset + 2, f32::NAN);
                        mlak::swiglu(gate.as_ref(), stride, &up, stride, y.as_mut(), stride, rows, n).unwrap();
                        if rows * n > 0 {
                            assert_ran(ISA);
                        }
                        let s = shape(rows, n, stride, offset);
                        for r in 0..rows {
                            for i in 0..n {
                                let k = r * stride + i;
                                let want = reference::silu(data[k]) * up[k] as f64;
                                // SiLU's tolerance plus one product rounding.
                                let tol = EPS * (9.0 + 4.0 * (data[k] as f64).abs()) * want.abs() + 2e-38 * (data[k] as f64).abs().max(1.0);
                                let got = y.as_ref()[k] as f64;
                                assert!((got - want).abs() <= tol, "swiglu row {r} index {i}: got {got:e}, want {want:e}, {s}");
                            }
                        }

                        let mut xy = Unaligned::from_slice(&data, offset);
                        mlak::bias_add_in_place(xy.as_mut(), stride, rows, n, &bias).unwrap();
                        for r in 0..rows {
                            for i in 0..n {
                                let k = r * stride + i;
                                let want = data[k] as f64 + bias[i] as f64;
                                // One correctly rounded addition.
                                let got = xy.as_ref()[k] as f64;
                                assert!((got - want).abs() <= 0.5 * EPS * want.abs(), "bias_add row {r} index {i}: got {got:e}, want {want:e}, {s}");
                            }
                            for k in r * stride + n..((r + 1) * stride).min(data.len()) {
                                assert_eq!(xy.as_ref()[k], data[k], "bias_add wrote the padding at {k}, {s}");
                            }
                        }
                    });
                }

                #[test]
                fn rope_matches_reference(
                    rows in 0usize..5,
                    heads in 1usize..4,
                    half_dim in 1usize..40,
                    rot_frac in 0usize..3,
                    interleaved in any::<bool>(),
                    pad in 0usize..3,
                    offset in 0usize..3,
                    position_offset in prop_oneof![Just(0u64), 0u64..5000],
                    per_row in any::<bool>(),
                ) {
                    let head_dim = 2 * half_dim;
                    // Full, half-ish and minimal rotary dimensions.
                    let rot = match rot_frac { 0 => head_dim, 1 => 2 * half_dim.div_ceil(2), _ => 2 };
                    let n = heads * head_dim;
                    let stride = n + pad;
                    let len = if rows == 0 { 0 } else { (rows - 1) * stride + n };
                    let data = Rng::new((rows + 7 * n) as u64).vec(len, -3.0, 3.0);
                    let positions: Vec<i64> = (0..rows as i64).map(|r| (r * 37) % 11).collect();
                    let layout = if interleaved { RopeLayout::Interleaved } else { RopeLayout::HalfSplit };
                    let params = RopeParams { layout, heads, head_dim, rotary_dim: rot, base: 10000.0, position_offset };
                    on_isa(ISA, || {
                        let x = Unaligned::from_slice(&data, offset);
                        let mut y = Unaligned::new(len, offset + 1, f32::NAN);
                        let pos_arg = per_row.then_some(&positions[..]);
                        mlak::rope(x.as_ref(), stride, y.as_mut(), stride, rows, &params, pos_arg).unwrap();
                        if rows > 0 {
                            assert_ran(ISA);
                        }
                        let mut xy = Unaligned::from_slice(&data, offset);
                        mlak::rope_in_place(xy.as_mut(), stride, rows, &params, pos_arg).unwrap();
                        let s = format!("{} heads={heads} head_dim={head_dim} rot={rot} {layout:?} offset={position_offset} per_row={per_row}",
                            shape(rows, n, stride, offset));
                        for r in 0..rows {
                            let span = r * stride..r * stride + n;
                            let pos = position_offset + if per_row { positions[r] as u64 } else { r as u64 };
                            let want = reference::rope(&data[span.clone()], heads, head_dim, rot, interleaved, 10000.0, pos as f64);
                            for (i, &w) in want.iter().enumerate() {
                                let k = span.start + i;
                                let j = i % head_dim;
                                let pair = if j >= rot { 0.0 } else if interleaved {
                                    (data[k - (j % 2)] as f64).abs() + (data[k - (j % 2) + 1] as f64).abs()
                                } else {
                                    let p = if j < rot / 2 { k } else { k - rot / 2 };
                                    (data[p] as f64).abs() + (data[p + rot / 2] as f64).abs()
                                };
                                // cos and sin are rounded to f32 (EPS/2 each), then a product
                                // and an FMA: 2 EPS of the pair's magnitude.
                                let tol = 2.0 * EPS * pair;
                                for (what, got) in [("out of place", y.as_ref()[k]), ("in place", xy.as_ref()[k])] {
                                    assert!((got as f64 - w).abs() <= tol, "rope {what} row {r} index {i}: got {got:e}, want {w:e}, tol {tol:e}, {s}");
                                }
                            }
                        }
                    });
                }
            }

            #[test]
            fn norms_in_place_and_long_rows() {
                on_isa(ISA, || {
                    for (rows, n) in [(3usize, 1usize), (2, 100_003), (300, 384)] {
                        let x = Rng::new(n as u64).vec(rows * n, -5.0, 5.0);
                        let res = Rng::new(n as u64 + 1).vec(rows * n, -5.0, 5.0);
                        let gamma = Rng::new(2).vec(n, 0.5, 1.5);
                        let beta = Rng::new(3).vec(n, -0.5, 0.5);
                        let p = NormParams { gamma: Some(&gamma), beta: Some(&beta), eps: 1e-5 };
                        // The residual stream updated in place: sum into `stream`.
                        let mut stream = res.clone();
                        let mut y = vec![0.0f32; rows * n];
                        let mut sum = vec![0.0f32; rows * n];
                        mlak::add_layernorm(&x, n, &stream, n, Some((&mut sum, n)), &mut y, n, rows, n, &p).unwrap();
                        assert_ran(ISA);
                        stream.copy_from_slice(&sum);
                        for r in 0..rows {
                            let span = r * n..(r + 1) * n;
                            let h: Vec<f64> = span.clone().map(|k| x[k] as f64 + res[k] as f64).collect();
                            let mean = h.iter().sum::<f64>() / n as f64;
                            let var = h.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
                            let want = reference::layernorm(&x[span.clone()], Some(&res[span.clone()]), Some(&gamma), Some(&beta), 1e-5);
                            check_norm_row(&y[span.clone()], &want, &h, Some(&gamma), Some(&beta), 1.0 / (var + 1e-5).sqrt(), r, &format!("rows={rows} n={n}"));
                        }
                    }
                });
            }

            /// Many consecutive positions exercise the angle recurrence of the
            /// driver and its periodic reseeding, far from position 0.
            #[test]
            fn rope_long_sequence() {
                on_isa(ISA, || {
                    let (rows, heads, head_dim) = (700usize, 2usize, 64usize);
                    let n = heads * head_dim;
                    let data = Rng::new(21).vec(rows * n, -2.0, 2.0);
                    for layout in [RopeLayout::Interleaved, RopeLayout::HalfSplit] {
                        let params = RopeParams { layout, heads, head_dim, rotary_dim: head_dim, base: 10000.0, position_offset: 1_000_000 };
                        let mut y = vec![0.0f32; rows * n];
                        mlak::rope(&data, n, &mut y, n, rows, &params, None).unwrap();
                        assert_ran(ISA);
                        for r in 0..rows {
                            let want = reference::rope(&data[r * n..(r + 1) * n], heads, head_dim, head_dim,
                                layout == RopeLayout::Interleaved, 10000.0, (1_000_000 + r) as f64);
                            for (i, &w) in want.iter().enumerate() {
                                let got = y[r * n + i] as f64;
                                // 2 EPS of the pair magnitude (at most 2·2 here), as in the property test.
                                assert!((got - w).abs() <= 8.0 * EPS, "{layout:?} row {r} index {i}: got {got:e}, want {w:e}");
                            }
                        }
                    }
                });
            }

            #[test]
            fn norms_nonfinite_policy() {
                on_isa(ISA, || {
                    let n = 37;
                    let p = NormParams::default();
                    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                        let mut x = vec![1.5f32; n];
                        x[n - 2] = bad;
                        let mut y = vec![0.0f32; n];
                        mlak::layernorm(&x, n, &mut y, n, 1, n, &p).unwrap();
                        assert!(y.iter().all(|v| v.is_nan()), "layernorm with {bad} gave {y:?}");
                        mlak::rmsnorm(&x, n, &mut y, n, 1, n, &p).unwrap();
                        if bad.is_nan() {
                            assert!(y.iter().all(|v| v.is_nan()), "rmsnorm with NaN gave {y:?}");
                        } else {
                            assert!(y[n - 2].is_nan(), "rmsnorm with {bad}: the infinite entry gave {}", y[n - 2]);
                            assert_eq!(y[0], 0.0, "rmsnorm with {bad}: a finite entry gave {}", y[0]);
                        }
                    }
                    // A constant row has variance 0: y = beta.
                    let x = vec![2.5f32; n];
                    let beta = vec![0.25f32; n];
                    let mut y = vec![0.0f32; n];
                    mlak::layernorm(&x, n, &mut y, n, 1, n, &NormParams { beta: Some(&beta), ..p }).unwrap();
                    assert!(y.iter().all(|&v| v == 0.25), "constant row gave {y:?}");
                });
            }

            #[test]
            fn activations_special_values() {
                on_isa(ISA, || {
                    let x = [f32::NEG_INFINITY, f32::INFINITY, f32::NAN, 0.0, -0.0, -200.0, 200.0, f32::MAX, f32::MIN];
                    for act in [Activation::GeluErf, Activation::GeluTanh, Activation::Silu] {
                        let mut y = [1.0f32; 9];
                        mlak::activate(act, &x, 9, &mut y, 9, 1, 9).unwrap();
                        assert_ran(ISA);
                        assert_eq!(y[0], 0.0, "{act:?}(-inf)");
                        assert_eq!(y[1], f32::INFINITY, "{act:?}(+inf)");
                        assert!(y[2].is_nan(), "{act:?}(NaN) = {}", y[2]);
                        assert_eq!((y[3], y[5], y[6]), (0.0, 0.0, 200.0), "{act:?} at 0, -200, 200");
                        assert_eq!((y[7], y[8]), (f32::MAX, 0.0), "{act:?} at ±MAX");
                    }
                    let mut e = [0.0f32; 3];
                    mlak::erf(&[f32::NEG_INFINITY, f32::INFINITY, f32::NAN], &mut e).unwrap();
                    assert_eq!(&e[..2], &[-1.0, 1.0], "erf(±inf)");
                    assert!(e[2].is_nan(), "erf(NaN)");
                    mlak::tanh(&[f32::NEG_INFINITY, f32::INFINITY, f32::NAN], &mut e).unwrap();
                    assert_eq!(&e[..2], &[-1.0, 1.0], "tanh(±inf)");
                    assert!(e[2].is_nan(), "tanh(NaN)");
                });
            }

            /// Measures the vector erf and tanh against f64 on every 61st
            /// positive f32 below 16 (and its negation) and checks the
            /// documented bounds. Beyond 16 both saturate to ±1 exactly.
            #[test]
            fn erf_tanh_error_bound() {
                on_isa(ISA, || {
                    let step: u32 = std::env::var("MLAK_EXP_SWEEP_STEP").ok().and_then(|v| v.parse().ok()).unwrap_or(61);
                    let mut xs = Vec::new();
                    let mut bits = 0u32;
                    while bits <= 16.0f32.to_bits() {
                        let v = f32::from_bits(bits);
                        xs.push(v);
                        xs.push(-v);
                        bits += step;
                    }
                    xs.extend([1.0, -1.0, 0.625, -0.625, 9.3, 1e30, -1e30]);
                    let mut ys = vec![0.0f32; xs.len()];
                    mlak::erf(&xs, &mut ys).unwrap();
                    assert_ran(ISA);
                    let mut worst = (0.0f64, 0.0f32);
                    for (&x, &y) in xs.iter().zip(&ys) {
                        let d = (y as f64 - reference::erf(x as f64)).abs();
                        if d > worst.0 {
                            worst = (d, x);
                        }
                    }
                    eprintln!("{}: erf max abs error {:e} at x = {:e}", ISA.name(), worst.0, worst.1);
                    assert!(worst.0 <= ERF_MAX_ABS_ERROR as f64, "erf error {:e} at x = {:e}", worst.0, worst.1);

                    mlak::tanh(&xs, &mut ys).unwrap();
                    let (mut worst_abs, mut worst_rel) = ((0.0f64, 0.0f32), (0.0f64, 0.0f32));
                    for (&x, &y) in xs.iter().zip(&ys) {
                        let w = (x as f64).tanh();
                        let d = (y as f64 - w).abs();
                        let rel = if w == 0.0 { d } else { d / w.abs() };
                        if d > worst_abs.0 {
                            worst_abs = (d, x);
                        }
                        if rel > worst_rel.0 {
                            worst_rel = (rel, x);
                        }
                    }
                    eprintln!("{}: tanh max abs error {:e} at {:e}, max rel error {:e} at {:e}",
                        ISA.name(), worst_abs.0, worst_abs.1, worst_rel.0, worst_rel.1);
                    assert!(worst_abs.0 <= TANH_MAX_ABS_ERROR as f64, "tanh abs error {:e} at x = {:e}", worst_abs.0, worst_abs.1);
                    assert!(worst_rel.0 <= TANH_MAX_REL_ERROR as f64, "tanh rel error {:e} at x = {:e}", worst_rel.0, worst_rel.1);
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

#[test]
fn glue_rejects_bad_arguments() {
    let x = vec![0.0f32; 20];
    let mut y = vec![0.0f32; 20];
    let p = NormParams::default();
    let e = mlak::layernorm(&x, 3, &mut y, 5, 2, 5, &p).unwrap_err();
    assert_eq!(e.status(), mlak::Status::InvalidArgument);
    assert!(e.message().contains("x_stride = 3"), "{}", e.message());
    for eps in [-1.0, f32::NAN, f32::INFINITY] {
        let e = mlak::layernorm(&x, 5, &mut y, 5, 2, 5, &NormParams { eps, ..p }).unwrap_err();
        assert!(e.message().contains("eps"), "eps = {eps}: {}", e.message());
    }
    let short = [1.0f32; 4];
    let e = mlak::layernorm(&x, 5, &mut y, 5, 2, 5, &NormParams { gamma: Some(&short), ..p }).unwrap_err();
    assert!(e.message().contains("gamma has 4 elements"), "{}", e.message());
    let e = mlak::rmsnorm(&x, 5, &mut y, 5, 2, 5, &NormParams { beta: Some(&x[..5]), ..p }).unwrap_err();
    assert!(e.message().contains("beta"), "{}", e.message());
    let e = mlak::bias_add_in_place(&mut y, 5, 2, 5, &short).unwrap_err();
    assert!(e.message().contains("bias has 4 elements"), "{}", e.message());
    let rp = RopeParams { layout: RopeLayout::HalfSplit, heads: 2, head_dim: 5, rotary_dim: 6, base: 1e4, position_offset: 0 };
    let e = mlak::rope(&x, 10, &mut y, 10, 2, &rp, None).unwrap_err();
    assert!(e.message().contains("rotary_dim = 6"), "{}", e.message());
    let rp = RopeParams { head_dim: 4, rotary_dim: 3, ..rp };
    assert!(mlak::rope(&x, 8, &mut y, 8, 2, &rp, None).unwrap_err().message().contains("rotary_dim = 3"));
    let rp = RopeParams { rotary_dim: 4, base: 0.0, ..rp };
    assert!(mlak::rope(&x, 8, &mut y, 8, 2, &rp, None).unwrap_err().message().contains("base = 0"));
    let rp = RopeParams { base: 1e4, ..rp };
    let e = mlak::rope(&x, 8, &mut y, 8, 2, &rp, Some(&[0, -3])).unwrap_err();
    assert!(e.message().contains("positions[1] = -3"), "{}", e.message());
    let e = mlak::rope(&x, 8, &mut y, 8, 2, &rp, Some(&[0])).unwrap_err();
    assert!(e.message().contains("positions has 1 elements"), "{}", e.message());
    assert_eq!(y, vec![0.0f32; 20], "a rejected call wrote its output");
}
