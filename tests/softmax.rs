//! Softmax, log-softmax, confidence and early-exit kernels under every
//! dispatch level, against the f64 references in `mlak::reference`.
//!
//! Tolerances, in units of f32 epsilon (EPS) relative to the reference:
//! - the argument (x − max)/T is formed in f32, which costs up to
//!   |x − max|/T · EPS of relative error in each e^arg;
//! - the vector exp adds at most `EXP_MAX_ULP` ulp, and the final multiply
//!   or subtraction one more rounding: 8 EPS covers both with margin;
//! - the row sum adds positive terms in f32 over 1 to 64 partial sums. Its
//!   relative error grows like sqrt(terms)·EPS in practice, and n/4·EPS at
//!   worst. 0.01·n·EPS bounds the practical growth for every n tested while
//!   still catching any wrong term, which costs at least 1/n of the sum.

mod common;

use common::{assert_ran, cases, on_isa, Rng, Unaligned, EPS};
use mlak::reference::softmax as reference;
use mlak::{Confidence, ExitThresholds, Isa};
use proptest::prelude::*;

/// Relative tolerance of a probability whose logit sits `dist` below the
/// row maximum, for a row of `n` entries; see the module comment.
fn prob_tolerance(dist_over_t: f64, n: usize) -> f64 {
    EPS * (dist_over_t + 8.0 + 0.01 * n as f64)
}

fn row_max(row: &[f32]) -> f64 {
    row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64))
}

/// Checks `got` (one row) against the reference softmax of `row`.
fn check_softmax_row(got: &[f32], row: &[f32], t: f32, r: usize, shape: &str) {
    let want = reference::softmax(row, 1.0 / t as f64);
    let m = row_max(row);
    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
        let dist = (m - row[i] as f64) / t as f64;
        // 1e-37 absorbs results the exp flushes to zero below 2^-126.
        let tol = w.abs() * prob_tolerance(dist, row.len()) + 1e-37;
        let ok = g as f64 == w || (g as f64 - w).abs() <= tol || (g.is_nan() && w.is_nan());
        assert!(ok, "softmax row {r} index {i}: got {g:e}, want {w:e}, tol {tol:e}, x = {}, {shape}", row[i]);
    }
}

/// Checks `got` (one row) against the reference log-softmax of `row`. The
/// absolute error scales with the magnitude of the log-probability.
fn check_log_softmax_row(got: &[f32], row: &[f32], t: f32, r: usize, shape: &str) {
    let want = reference::log_softmax(row, 1.0 / t as f64);
    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
        let tol = EPS * (2.0 * w.abs() + 8.0 + 0.01 * row.len() as f64);
        let ok = (g as f64 - w).abs() <= tol || (g.is_nan() && w.is_nan()) || (g as f64 == w);
        assert!(ok, "log_softmax row {r} index {i}: got {g:e}, want {w:e}, tol {tol:e}, {shape}");
    }
}

/// Checks one row's confidence statistics against the reference.
///
/// Entropy = ln S0 − S1/(T·S0) is a difference of terms of size up to
/// ln n + max |x − max|/T, so its tolerance is absolute in those units.
/// max_prob = 1/S0 carries the sum's relative error. The margin subtracts
/// two such probabilities. The variance uses the two-pass formula on f32
/// data scaled to [−1, 1], whose relative error grows like the sum's.
fn check_confidence(got: &Confidence, row: &[f32], t: f32, r: usize, shape: &str) {
    let want = reference::confidence(row, 1.0 / t as f64);
    let n = row.len();
    let m = row_max(row);
    let spread = row.iter().map(|&v| (m - v as f64) / t as f64).filter(|d| d.is_finite()).fold(0.0, f64::max);
    let sum_rel = EPS * (8.0 + 0.01 * n as f64 + spread);
    let checks = [
        ("entropy", got.entropy, want.entropy, sum_rel * (1.0 + (n.max(1) as f64).ln() + spread)),
        ("max_prob", got.max_prob, want.max_prob, sum_rel * want.max_prob.abs() + 1e-37),
        ("margin", got.margin, want.margin, 2.0 * sum_rel * want.max_prob.abs() + 1e-37),
        ("logit_variance", got.logit_variance, want.logit_variance, EPS * (16.0 + 0.01 * n as f64) * want.logit_variance.abs()),
    ];
    for (name, g, w, tol) in checks {
        // A value beyond f32::MAX must come out as the infinity it rounds to.
        let ok = g == w as f32 || (g as f64 - w).abs() <= tol || (g.is_nan() && w.is_nan());
        assert!(ok, "{name} row {r}: got {g:e}, want {w:e}, tol {tol:e}, {shape}");
    }
}

/// Strategy for a logit row of `n` values: moderate values, a few -inf
/// entries, or huge magnitudes, chosen per case.
fn logits(n: usize) -> impl Strategy<Value = Vec<f32>> {
    prop_oneof![
        4 => proptest::collection::vec(-30.0f32..30.0, n),
        1 => proptest::collection::vec(prop_oneof![9 => -30.0f32..30.0, 1 => Just(f32::NEG_INFINITY)], n),
        1 => proptest::collection::vec(-1e30f32..1e30, n),
    ]
}

/// Cases: 0 to 4 rows of 0 to 150 entries, which crosses every unroll edge
/// of every level (4 vectors of 16 lanes = 64), strides up to n + 3 and data
/// pointers misaligned by 0 to 2 elements.
fn row_case() -> impl Strategy<Value = (usize, usize, usize, usize, f32, Vec<f32>)> {
    (0usize..5, 0usize..151, 0usize..4, 0usize..3, prop_oneof![Just(1.0f32), Just(0.5), Just(2.7)]).prop_flat_map(
        |(rows, n, pad, offset, t)| {
            let stride = n + pad;
            let len = if rows == 0 { 0 } else { (rows - 1) * stride + n };
            (Just(rows), Just(n), Just(stride), Just(offset), Just(t), logits(len))
        },
    )
}

fn shape(rows: usize, n: usize, stride: usize, offset: usize, t: f32) -> String {
    format!("shape rows={rows} n={n} stride={stride} offset={offset} T={t}")
}

macro_rules! isa_suite {
    ($($module:ident => $isa:expr),* $(,)?) => {$(
        mod $module {
            use super::*;
            const ISA: Isa = $isa;

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(cases(48)))]

                #[test]
                fn softmax_matches_reference(case in row_case()) {
                    let (rows, n, stride, offset, t, data) = case;
                    on_isa(ISA, || {
                        let x = Unaligned::from_slice(&data, offset);
                        let mut y = Unaligned::new(data.len(), offset + 1, f32::NAN);
                        mlak::softmax(x.as_ref(), stride, y.as_mut(), stride, rows, n, t).unwrap();
                        if rows * n > 0 {
                            assert_ran(ISA);
                        }
                        let s = shape(rows, n, stride, offset, t);
                        for r in 0..rows {
                            let row = &data[r * stride..r * stride + n];
                            check_softmax_row(&y.as_ref()[r * stride..r * stride + n], row, t, r, &s);
                        }
                    });
                }

                #[test]
                fn log_softmax_matches_reference(case in row_case()) {
                    let (rows, n, stride, offset, t, data) = case;
                    on_isa(ISA, || {
                        let x = Unaligned::from_slice(&data, offset);
                        let mut y = Unaligned::new(data.len(), offset, f32::NAN);
                        mlak::log_softmax(x.as_ref(), stride, y.as_mut(), stride, rows, n, t).unwrap();
                        let s = shape(rows, n, stride, offset, t);
                        for r in 0..rows {
                            let row = &data[r * stride..r * stride + n];
                            check_log_softmax_row(&y.as_ref()[r * stride..r * stride + n], row, t, r, &s);
                        }
                    });
                }

                #[test]
                fn confidence_matches_reference(case in row_case()) {
                    let (rows, n, stride, offset, t, data) = case;
                    on_isa(ISA, || {
                        let x = Unaligned::from_slice(&data, offset);
                        let mut out = vec![Confidence::default(); rows];
                        mlak::confidence(x.as_ref(), stride, rows, n, t, &mut out).unwrap();
                        if rows > 0 {
                            assert_ran(ISA);
                        }
                        let s = shape(rows, n, stride, offset, t);
                        for r in 0..rows {
                            check_confidence(&out[r], &data[r * stride..r * stride + n], t, r, &s);
                        }
                    });
                }
            }

            #[test]
            fn softmax_long_rows() {
                on_isa(ISA, || {
                    for (seed, n) in [(1u64, 100_000usize), (2, 100_003)] {
                        let data = Rng::new(seed).vec(n, -20.0, 20.0);
                        let mut y = vec![0.0f32; n];
                        mlak::softmax(&data, n, &mut y, n, 1, n, 1.0).unwrap();
                        assert_ran(ISA);
                        check_softmax_row(&y, &data, 1.0, 0, &format!("n={n}"));
                        mlak::log_softmax(&data, n, &mut y, n, 1, n, 1.0).unwrap();
                        check_log_softmax_row(&y, &data, 1.0, 0, &format!("n={n}"));
                        let mut c = [Confidence::default()];
                        mlak::confidence(&data, n, 1, n, 1.0, &mut c).unwrap();
                        check_confidence(&c[0], &data, 1.0, 0, &format!("n={n}"));
                    }
                });
            }

            #[test]
            fn softmax_many_rows_threaded() {
                on_isa(ISA, || {
                    let (rows, n) = (300, 517);
                    let data = Rng::new(7).vec(rows * n, -10.0, 10.0);
                    let mut y = vec![0.0f32; rows * n];
                    mlak::softmax(&data, n, &mut y, n, rows, n, 1.0).unwrap();
                    for r in 0..rows {
                        let row = &data[r * n..(r + 1) * n];
                        check_softmax_row(&y[r * n..(r + 1) * n], row, 1.0, r, "rows=300 n=517");
                    }
                });
            }

            #[test]
            fn softmax_in_place_matches() {
                on_isa(ISA, || {
                    let data = Rng::new(3).vec(3 * 40, -5.0, 5.0);
                    let mut xy = data.clone();
                    mlak::softmax_in_place(&mut xy, 40, 3, 37, 1.0).unwrap();
                    for r in 0..3 {
                        check_softmax_row(&xy[r * 40..r * 40 + 37], &data[r * 40..r * 40 + 37], 1.0, r, "in place");
                        assert_eq!(&xy[r * 40 + 37..r * 40 + 40], &data[r * 40 + 37..r * 40 + 40], "padding written");
                    }
                });
            }

            #[test]
            fn softmax_nonfinite_policy() {
                on_isa(ISA, || {
                    let n = 37;
                    let inf = f32::INFINITY;
                    let mut rows: Vec<Vec<f32>> = Vec::new();
                    rows.push(vec![-inf; n]);
                    let mut with_nan = vec![1.0f32; n];
                    with_nan[n - 1] = f32::NAN;
                    rows.push(with_nan);
                    let mut nan_and_ninf = vec![-inf; n];
                    nan_and_ninf[5] = f32::NAN;
                    rows.push(nan_and_ninf);
                    let mut some_ninf = vec![0.5f32; n];
                    some_ninf[0] = -inf;
                    some_ninf[n - 1] = -inf;
                    rows.push(some_ninf);
                    rows.push((0..n).map(|i| if i % 2 == 0 { 1e30 } else { -1e30 }).collect());
                    rows.push((0..n).map(|i| 3e38 - i as f32 * 1e37).collect());
                    let mut pos_inf = vec![0.0f32; n];
                    pos_inf[3] = inf;
                    rows.push(pos_inf);

                    for (r, row) in rows.iter().enumerate() {
                        let mut y = vec![0.0f32; n];
                        mlak::softmax(row, n, &mut y, n, 1, n, 1.0).unwrap();
                        check_softmax_row(&y, row, 1.0, r, "non-finite");
                        assert!(y.iter().all(|v| !v.is_infinite()), "row {r} overflowed: {y:?}");
                        mlak::log_softmax(row, n, &mut y, n, 1, n, 1.0).unwrap();
                        check_log_softmax_row(&y, row, 1.0, r, "non-finite");
                        let mut c = [Confidence::default()];
                        mlak::confidence(row, n, 1, n, 1.0, &mut c).unwrap();
                        check_confidence(&c[0], row, 1.0, r, "non-finite");
                    }
                    // The all -inf row: probabilities 0, log-probabilities -inf, entropy 0.
                    let mut y = vec![1.0f32; n];
                    mlak::softmax(&rows[0], n, &mut y, n, 1, n, 1.0).unwrap();
                    assert!(y.iter().all(|&v| v == 0.0), "all -inf row gave {y:?}");
                });
            }

            #[test]
            fn short_row_groups_with_nonfinite_rows() {
                on_isa(ISA, || {
                    // 17 rows of 37 in one call: whole groups of rows, some
                    // holding a NaN, +inf or all −inf row next to plain ones,
                    // and a remainder, at a padded stride, out of place and in
                    // place.
                    let (rows, n, stride) = (17, 37, 40);
                    let inf = f32::INFINITY;
                    let mut data = Rng::new(13).vec(rows * stride, -6.0, 6.0);
                    data[2 * stride + 4] = f32::NAN;
                    data[5 * stride..5 * stride + n].fill(-inf);
                    data[9 * stride + 30] = inf;
                    data[12 * stride] = -inf;
                    let rows_of = |y: &[f32], r: usize| y[r * stride..r * stride + n].to_vec();
                    let mut y = vec![0.0f32; rows * stride];
                    mlak::softmax(&data, stride, &mut y, stride, rows, n, 1.5).unwrap();
                    for r in 0..rows {
                        check_softmax_row(&rows_of(&y, r), &rows_of(&data, r), 1.5, r, "17 rows, n = 37, groups");
                    }
                    mlak::log_softmax(&data, stride, &mut y, stride, rows, n, 1.5).unwrap();
                    for r in 0..rows {
                        check_log_softmax_row(&rows_of(&y, r), &rows_of(&data, r), 1.5, r, "17 rows, n = 37, groups");
                    }
                    let mut xy = data.clone();
                    mlak::softmax_in_place(&mut xy, stride, rows, n, 1.5).unwrap();
                    for r in 0..rows {
                        check_softmax_row(&rows_of(&xy, r), &rows_of(&data, r), 1.5, r, "17 rows in place");
                        let pad = r * stride + n..(r + 1) * stride;
                        assert_eq!(&xy[pad.clone()], &data[pad], "row {r}: padding written in place");
                    }
                });
            }

            #[test]
            fn confidence_edge_rows() {
                on_isa(ISA, || {
                    let mut c = [Confidence::default(); 1];
                    mlak::confidence(&[], 0, 1, 0, 1.0, &mut c).unwrap();
                    assert_eq!(c[0], Confidence::default(), "empty row");
                    mlak::confidence(&[4.0], 1, 1, 1, 1.0, &mut c).unwrap();
                    assert_eq!(c[0], Confidence { entropy: 0.0, max_prob: 1.0, margin: 1.0, logit_variance: 0.0 }, "n = 1");
                    let tie = [2.0f32, 7.0, 1.0, 7.0, 3.0];
                    mlak::confidence(&tie, 5, 1, 5, 1.0, &mut c).unwrap();
                    assert_eq!(c[0].margin, 0.0, "tie for the maximum must give margin 0");
                    let uniform = [0.25f32; 64];
                    mlak::confidence(&uniform, 64, 1, 64, 1.0, &mut c).unwrap();
                    assert!((c[0].entropy as f64 - 64f64.ln()).abs() < 1e-5, "uniform entropy {}", c[0].entropy);
                    assert_eq!(c[0].logit_variance, 0.0, "constant row variance");
                    let mixed = [f32::NEG_INFINITY, 1.0, 2.0];
                    mlak::confidence(&mixed, 3, 1, 3, 1.0, &mut c).unwrap();
                    assert_eq!(c[0].logit_variance, f32::INFINITY, "mixed infinite row variance");
                });
            }

            #[test]
            fn early_exit_matches_thresholds() {
                on_isa(ISA, || {
                    let (rows, n) = (64, 50);
                    let mut rng = Rng::new(11);
                    let mut data = Vec::new();
                    for r in 0..rows {
                        // Sharpness grows with r, so some rows are confident.
                        let scale = 0.2 * r as f32;
                        data.extend(rng.vec(n, -1.0, 1.0).into_iter().map(|v| v * scale));
                    }
                    data[5 * n] = f32::NAN;
                    let t = ExitThresholds { max_entropy: 1.5, min_max_prob: 0.3, min_margin: 0.05 };
                    let mut exit = vec![false; rows];
                    let mut stats = vec![Confidence::default(); rows];
                    let count = mlak::early_exit(&data, n, rows, n, 1.0, &t, &mut exit, Some(&mut stats)).unwrap();
                    assert_ran(ISA);
                    let mut expected = 0;
                    for r in 0..rows {
                        let want = reference::confidence(&data[r * n..(r + 1) * n], 1.0);
                        let ok = want.entropy <= 1.5 && want.max_prob >= 0.3 && want.margin >= 0.05;
                        // Rows within rounding of a threshold may go either way.
                        let near = (want.entropy - 1.5).abs() < 1e-4
                            || (want.max_prob - 0.3).abs() < 1e-5
                            || (want.margin - 0.05).abs() < 1e-5;
                        if !near {
                            assert_eq!(exit[r], ok, "row {r}: exit {} but reference stats {want:?}", exit[r]);
                        }
                        expected += usize::from(exit[r]);
                    }
                    assert!(!exit[5], "a NaN row must never exit");
                    assert_eq!(count, expected, "returned count");
                    assert!(count > 0, "no row passed the thresholds");
                    assert!(count < rows, "every row passed the thresholds");
                    let mut exit2 = vec![false; rows];
                    let count2 = mlak::early_exit(&data, n, rows, n, 1.0, &t, &mut exit2, None).unwrap();
                    assert_eq!((count2, &exit2), (count, &exit), "stats output must not change the decision");
                });
            }

            /// Measures the vector exp against the correctly rounded f64 exp on
            /// every 61st f32 of [EXP_LO, EXP_HI] (about 36 million values) plus
            /// the special values, and checks the documented ulp bound.
            #[test]
            fn exp_ulp_bound() {
                use mlak_kernels::simd::{EXP_HI, EXP_LO, EXP_MAX_ULP};
                on_isa(ISA, || {
                    let step: u32 = std::env::var("MLAK_EXP_SWEEP_STEP").ok().and_then(|v| v.parse().ok()).unwrap_or(61);
                    let mut xs = Vec::new();
                    let mut bits = 0u32;
                    while bits <= EXP_HI.to_bits() {
                        xs.push(f32::from_bits(bits));
                        bits += step;
                    }
                    let mut bits = 0x8000_0000u32;
                    while bits <= EXP_LO.to_bits() {
                        xs.push(f32::from_bits(bits));
                        bits += step;
                    }
                    xs.extend([EXP_LO, EXP_HI, 0.0, -0.0, 1.0, -1.0]);
                    let mut ys = vec![0.0f32; xs.len()];
                    mlak::exp(&xs, &mut ys).unwrap();
                    assert_ran(ISA);
                    let mut worst = (0u64, 0.0f32);
                    for (&x, &y) in xs.iter().zip(&ys) {
                        let want = (x as f64).exp() as f32;
                        let d = common::ulp_distance(y, want);
                        if d > worst.0 {
                            worst = (d, x);
                        }
                    }
                    eprintln!("{}: exp max error {} ulp at x = {:e}", ISA.name(), worst.0, worst.1);
                    assert!(worst.0 <= EXP_MAX_ULP as u64, "exp error {} ulp at x = {:e} exceeds {EXP_MAX_ULP}", worst.0, worst.1);

                    let special = [f32::NEG_INFINITY, -88.0, -1000.0, f32::INFINITY, 89.0, f32::NAN];
                    let mut out = [0.0f32; 6];
                    mlak::exp(&special, &mut out).unwrap();
                    assert_eq!(&out[..5], &[0.0, 0.0, 0.0, f32::INFINITY, f32::INFINITY], "out-of-range exp");
                    assert!(out[5].is_nan(), "exp(NaN) = {}", out[5]);
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
fn softmax_rejects_bad_arguments() {
    let x = vec![0.0f32; 20];
    let mut y = vec![0.0f32; 20];
    let e = mlak::softmax(&x, 3, &mut y, 5, 2, 5, 1.0).unwrap_err();
    assert_eq!(e.status(), mlak::Status::InvalidArgument);
    assert!(e.message().contains("x_stride = 3"), "{}", e.message());
    assert!(e.message().contains("n = 5"), "{}", e.message());
    let e = mlak::softmax(&x, 5, &mut y, 5, 5, 5, 1.0).unwrap_err();
    assert!(e.message().contains("x has 20 elements but the shape needs 25"), "{}", e.message());
    for t in [0.0, -1.0, f32::NAN, f32::INFINITY, 1e-40] {
        let e = mlak::softmax(&x, 5, &mut y, 5, 2, 5, t).unwrap_err();
        assert!(e.message().contains("temperature"), "T = {t}: {}", e.message());
    }
    assert_eq!(y, vec![0.0f32; 20], "a rejected call wrote its output");
    let t = ExitThresholds { max_entropy: f32::NAN, min_max_prob: 0.0, min_margin: 0.0 };
    let mut exit = vec![false; 2];
    let e = mlak::early_exit(&x, 5, 2, 5, 1.0, &t, &mut exit, None).unwrap_err();
    assert!(e.message().contains("thresholds.max_entropy = NaN"), "{}", e.message());
}

#[test]
fn softmax_concurrent_callers_agree() {
    let (rows, n) = (16, 3000);
    let data = Rng::new(21).vec(rows * n, -8.0, 8.0);
    let mut expected = vec![0.0f32; rows * n];
    mlak::softmax(&data, n, &mut expected, n, rows, n, 1.0).unwrap();
    std::thread::scope(|scope| {
        for t in 0..8 {
            let (data, expected) = (&data, &expected);
            scope.spawn(move || {
                let mut y = vec![0.0f32; rows * n];
                for _ in 0..20 {
                    mlak::softmax(data, n, &mut y, n, rows, n, 1.0).unwrap();
                    assert!(y == *expected, "caller thread {t} got different bits");
                }
            });
        }
    });
}
