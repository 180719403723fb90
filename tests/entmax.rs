//! Sparsemax, entmax-1.5 and α-entmax under every dispatch level, against
//! the f64 references in `mlak::reference::entmax`.
//!
//! Tolerances, in units of f32 epsilon (EPS):
//! - sparsemax and entmax-1.5: every support entry has |x − max| ≤ 2, so
//!   x − max, the scaling and the subtraction of τ each cost at most about
//!   1 EPS absolute, and τ inherits the mean of those errors plus the f32
//!   summation error of its k terms, which stays below 0.01·k·EPS for the
//!   sizes tested. 16 EPS absolute (doubled for entmax-1.5, whose square
//!   doubles the error of d ≤ 1) plus that summation term bounds both.
//! - α-entmax: p = exp(ln(1 + q)/a) loses about (|ln p| + 4)·EPS relative
//!   through ln, exp and the rounding of q, the stopping rule leaves a
//!   residual far below EPS, and the division by the sum adds the
//!   summation error; 64·EPS absolute covers the rest. Near the support
//!   boundary the problem itself is ill-conditioned for α > 2: p moves by
//!   p^(2−α) per unit of threshold, and an f32 threshold carries a few
//!   EPS·max(1, 1/(α − 1)) of error, so twice that product is added, or
//!   within that error of the boundary the Hölder bound |Δv|^(1/(α − 1)).

mod common;

use common::{assert_ran, cases, on_isa, Rng, Unaligned, EPS};
use mlak::reference::entmax as reference;
use mlak::{BackwardShape, Isa};
use proptest::prelude::*;

/// Which normalizer a check runs.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Sparsemax,
    Entmax15,
    Alpha(f32),
}

impl Kind {
    fn reference(self, row: &[f32]) -> Vec<f64> {
        match self {
            Kind::Sparsemax => reference::sparsemax(row),
            Kind::Entmax15 => reference::entmax15(row),
            Kind::Alpha(a) => reference::alpha_entmax(row, a as f64),
        }
    }

    fn run(self, x: &[f32], x_stride: usize, y: &mut [f32], y_stride: usize, rows: usize, n: usize) {
        match self {
            Kind::Sparsemax => mlak::sparsemax(x, x_stride, y, y_stride, rows, n),
            Kind::Entmax15 => mlak::entmax15(x, x_stride, y, y_stride, rows, n),
            Kind::Alpha(a) => mlak::alpha_entmax(x, x_stride, y, y_stride, rows, n, &[a]),
        }
        .unwrap()
    }

    /// Error that the f32 threshold causes in entry `w` of an α-entmax row;
    /// see the module comment. 0 for the exact kernels.
    fn conditioning(self, w: f64) -> f64 {
        match self {
            Kind::Alpha(alpha) if w > 0.0 => {
                let a = alpha as f64 - 1.0;
                // Threshold error δ, moving v = p^a by a·δ.
                let delta = 8.0 * EPS * (1.0 / a).max(1.0);
                let slope = 2.0 * delta * w.powf(1.0 - a);
                if a <= 1.0 {
                    slope
                } else if a * delta < 0.5 * w.powf(a) {
                    // Twice the slope at p bounds the change while v moves
                    // by less than v/2, because p = v^(1/a) is concave.
                    slope.min((a * delta).powf(1.0 / a))
                } else {
                    // Closer to the boundary only Hölder continuity holds:
                    // |Δp| ≤ |Δv|^(1/a).
                    (a * delta).powf(1.0 / a)
                }
            }
            _ => 0.0,
        }
    }

    /// Absolute tolerance of entry `w` of a row of `n`; see the module
    /// comment. `cond_sum` is the row's total [`Kind::conditioning`], which
    /// the normalization may move onto any entry.
    fn tolerance(self, w: f64, n: usize, cond_sum: f64) -> f64 {
        let sum = 0.01 * n as f64;
        match self {
            Kind::Sparsemax => EPS * (16.0 + sum),
            Kind::Entmax15 => EPS * (32.0 + 2.0 * sum),
            Kind::Alpha(_) => EPS * ((w.ln().abs().min(100.0) + 16.0 + sum) * w + 64.0) + cond_sum,
        }
    }
}

/// Checks one output row against the reference: values within tolerance,
/// exact zeros where the reference is zero by a clear margin, sum 1 within
/// 1e-6 and no negative entry.
fn check_row(kind: Kind, got: &[f32], row: &[f32], r: usize, shape: &str) {
    let want = kind.reference(row);
    let n = row.len();
    let cond_sum: f64 = want.iter().map(|&w| kind.conditioning(w)).sum();
    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
        if w.is_nan() {
            assert!(g.is_nan(), "{kind:?} row {r} index {i}: got {g:e}, want NaN, {shape}");
            continue;
        }
        let tol = kind.tolerance(w, n, cond_sum);
        assert!(
            (g as f64 - w).abs() <= tol,
            "{kind:?} row {r} index {i}: got {g:e}, want {w:e}, tol {tol:e}, x = {}, {shape}",
            row[i]
        );
        assert!(g >= 0.0, "{kind:?} row {r} index {i}: negative output {g:e}, {shape}");
    }
    if want.iter().all(|w| w.is_finite()) && want.iter().any(|&w| w > 0.0) {
        let sum: f64 = got.iter().map(|&g| g as f64).sum();
        assert!((sum - 1.0).abs() <= 1e-6, "{kind:?} row {r}: sum {sum:.9}, {shape}");
    }
    if let Kind::Sparsemax | Kind::Entmax15 = kind {
        check_support(kind, got, row, r, shape);
    }
}

/// Checks that entries whose reference is 0 by a margin of more than the
/// tolerance are exactly 0.
fn check_support(kind: Kind, got: &[f32], row: &[f32], r: usize, shape: &str) {
    let wide: Vec<f64> = row.iter().map(|&v| v as f64).collect();
    let (max, scale) = (wide.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v)), if let Kind::Sparsemax = kind { 1.0 } else { 0.5 });
    // The reference threshold in units of u = scale·(x − max): recover it
    // from the largest entry, whose output is (−τ)^(1/scale·…).
    let want = kind.reference(row);
    let Some((top, &wt)) = want.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)) else { return };
    if wt.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return;
    }
    let tau = match kind {
        Kind::Sparsemax => wide[top] - max - wt,
        _ => scale * (wide[top] - max) - wt.sqrt(),
    };
    for (i, (&g, &v)) in got.iter().zip(&wide).enumerate() {
        let margin = tau - scale * (v - max);
        if margin > 64.0 * EPS {
            assert_eq!(g, 0.0, "{kind:?} row {r} index {i}: got {g:e} outside the support (margin {margin:e}), {shape}");
        }
    }
}

/// Strategy for a logit row of `n` values: moderate values, a few -inf
/// entries, huge magnitudes, or dyadic values with ties.
fn logits(n: usize) -> impl Strategy<Value = Vec<f32>> {
    prop_oneof![
        4 => proptest::collection::vec(-3.0f32..3.0, n),
        1 => proptest::collection::vec(prop_oneof![9 => -3.0f32..3.0, 1 => Just(f32::NEG_INFINITY)], n),
        1 => proptest::collection::vec(-1e30f32..1e30, n),
        1 => proptest::collection::vec((-8i32..8).prop_map(|k| k as f32 * 0.25), n),
    ]
}

/// Cases: 0 to 4 rows of 0 to 150 entries, which crosses every unroll edge
/// of every level (2 vectors of 16 lanes = 32), strides up to n + 3 and
/// data pointers misaligned by 0 to 2 elements.
fn row_case() -> impl Strategy<Value = (usize, usize, usize, usize, Vec<f32>)> {
    (0usize..5, 0usize..151, 0usize..4, 0usize..3).prop_flat_map(|(rows, n, pad, offset)| {
        let stride = n + pad;
        let len = if rows == 0 { 0 } else { (rows - 1) * stride + n };
        (Just(rows), Just(n), Just(stride), Just(offset), logits(len))
    })
}

fn alphas() -> impl Strategy<Value = f32> {
    prop_oneof![Just(1.0f32), Just(1.001), Just(1.2), Just(1.5), Just(1.7), Just(2.0), Just(2.5), Just(4.0)]
}

fn shape(rows: usize, n: usize, stride: usize, offset: usize) -> String {
    format!("shape rows={rows} n={n} stride={stride} offset={offset}")
}

/// Runs `kind` on a strided, misaligned case and checks every row.
fn check_case(kind: Kind, isa: Isa, case: (usize, usize, usize, usize, Vec<f32>)) {
    let (rows, n, stride, offset, data) = case;
    let x = Unaligned::from_slice(&data, offset);
    let mut y = Unaligned::new(data.len(), offset + 1, f32::NAN);
    kind.run(x.as_ref(), stride, y.as_mut(), stride, rows, n);
    if rows * n > 0 {
        assert_ran(isa);
    }
    let s = shape(rows, n, stride, offset);
    for r in 0..rows {
        let row = &data[r * stride..r * stride + n];
        check_row(kind, &y.as_ref()[r * stride..r * stride + n], row, r, &s);
    }
}

/// Checks `got` against `want` entry by entry with absolute tolerance `tol`.
fn check_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((g as f64 - w).abs() <= tol, "{what} index {i}: got {g:e}, want {w:e}, tol {tol:e}");
    }
}

macro_rules! isa_suite {
    ($($module:ident => $isa:expr),* $(,)?) => {$(
        mod $module {
            use super::*;
            const ISA: Isa = $isa;

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(cases(48)))]

                #[test]
                fn sparsemax_matches_reference(case in row_case()) {
                    on_isa(ISA, || check_case(Kind::Sparsemax, ISA, case));
                }

                #[test]
                fn entmax15_matches_reference(case in row_case()) {
                    on_isa(ISA, || check_case(Kind::Entmax15, ISA, case));
                }

                #[test]
                fn alpha_entmax_matches_reference(case in row_case(), alpha in alphas()) {
                    on_isa(ISA, || check_case(Kind::Alpha(alpha), ISA, case));
                }

                /// Shifting dyadic logits by a power of two leaves x − max
                /// bit-identical, so the outputs must be bit-identical.
                #[test]
                fn outputs_shift_invariant(ks in proptest::collection::vec(-512i32..512, 1..100), alpha in alphas()) {
                    on_isa(ISA, || {
                        let x: Vec<f32> = ks.iter().map(|&k| k as f32 / 64.0).collect();
                        let shifted: Vec<f32> = x.iter().map(|v| v + 16.0).collect();
                        let n = x.len();
                        for kind in [Kind::Sparsemax, Kind::Entmax15, Kind::Alpha(alpha)] {
                            let (mut y0, mut y1) = (vec![0.0f32; n], vec![0.0f32; n]);
                            kind.run(&x, n, &mut y0, n, 1, n);
                            kind.run(&shifted, n, &mut y1, n, 1, n);
                            assert_eq!(y0, y1, "{kind:?} is not shift invariant for x = {x:?}");
                        }
                    });
                }

                /// Reversing and rotating a row permutes the output; the sums
                /// run in another order, so entries agree within 2× the
                /// reference tolerance.
                #[test]
                fn outputs_permutation_equivariant(x in logits(67), rot in 0usize..67, alpha in alphas()) {
                    on_isa(ISA, || {
                        let n = x.len();
                        let perm: Vec<usize> = (0..n).map(|i| (n - 1 - i + rot) % n).collect();
                        let px: Vec<f32> = perm.iter().map(|&j| x[j]).collect();
                        for kind in [Kind::Sparsemax, Kind::Entmax15, Kind::Alpha(alpha)] {
                            let (mut y, mut py) = (vec![0.0f32; n], vec![0.0f32; n]);
                            kind.run(&x, n, &mut y, n, 1, n);
                            kind.run(&px, n, &mut py, n, 1, n);
                            for (i, &j) in perm.iter().enumerate() {
                                let cond_sum: f64 = y.iter().map(|&v| kind.conditioning(v as f64)).sum();
                                let tol = 2.0 * kind.tolerance(y[j] as f64, n, cond_sum);
                                let ok = (py[i] as f64 - y[j] as f64).abs() <= tol || (py[i].is_nan() && y[j].is_nan());
                                assert!(ok, "{kind:?} index {i} <- {j}: permuted {} vs {}, tol {tol:e}", py[i], y[j]);
                            }
                        }
                    });
                }

                #[test]
                fn backward_matches_reference(x in proptest::collection::vec(-2.0f32..2.0, 1..90),
                                              seed in 0u64..1000, alpha in alphas()) {
                    on_isa(ISA, || check_backward(ISA, &x, seed, alpha));
                }
            }

            #[test]
            fn long_rows_match_reference() {
                on_isa(ISA, || {
                    for (seed, n) in [(1u64, 100_000usize), (2, 100_003)] {
                        let data = Rng::new(seed).vec(n, -4.0, 4.0);
                        let mut y = vec![0.0f32; n];
                        for kind in [Kind::Sparsemax, Kind::Entmax15, Kind::Alpha(1.3), Kind::Alpha(3.0)] {
                            kind.run(&data, n, &mut y, n, 1, n);
                            assert_ran(ISA);
                            check_row(kind, &y, &data, 0, &format!("n={n}"));
                        }
                    }
                });
            }

            #[test]
            fn short_row_groups_of_every_spread() {
                on_isa(ISA, || check_short_row_groups(ISA));
            }

            #[test]
            fn many_rows_threaded_per_row_alpha() {
                on_isa(ISA, || {
                    let (rows, n) = (300, 517);
                    let data = Rng::new(7).vec(rows * n, -3.0, 3.0);
                    let alpha: Vec<f32> = (0..rows).map(|r| 1.0 + (r % 7) as f32 * 0.25).collect();
                    let mut y = vec![0.0f32; rows * n];
                    mlak::alpha_entmax(&data, n, &mut y, n, rows, n, &alpha).unwrap();
                    for r in 0..rows {
                        let row = &data[r * n..(r + 1) * n];
                        check_row(Kind::Alpha(alpha[r]), &y[r * n..(r + 1) * n], row, r, "rows=300 n=517");
                    }
                });
            }

            #[test]
            fn edge_policy() {
                on_isa(ISA, || check_edge_policy(ISA));
            }

            #[test]
            fn alpha_two_and_limits() {
                on_isa(ISA, || check_alpha_limits(ISA));
            }

            #[test]
            fn half_inputs_match_widened() {
                on_isa(ISA, || {
                    let n = 77;
                    let data = Rng::new(5).vec(n * 2, -3.0, 3.0);
                    let h: Vec<half::f16> = data.iter().map(|&v| half::f16::from_f32(v)).collect();
                    let b: Vec<half::bf16> = data.iter().map(|&v| half::bf16::from_f32(v)).collect();
                    let wh: Vec<f32> = h.iter().map(|v| v.to_f32()).collect();
                    let wb: Vec<f32> = b.iter().map(|v| v.to_f32()).collect();
                    for kind in [Kind::Sparsemax, Kind::Entmax15, Kind::Alpha(1.3)] {
                        let (mut got, mut want) = (vec![0.0f32; 2 * n], vec![0.0f32; 2 * n]);
                        match kind {
                            Kind::Sparsemax => mlak::sparsemax(&h, n, &mut got, n, 2, n).unwrap(),
                            Kind::Entmax15 => mlak::entmax15(&h, n, &mut got, n, 2, n).unwrap(),
                            Kind::Alpha(a) => mlak::alpha_entmax(&h, n, &mut got, n, 2, n, &[a]).unwrap(),
                        }
                        assert_ran(ISA);
                        kind.run(&wh, n, &mut want, n, 2, n);
                        assert_eq!(got, want, "{kind:?} f16 input differs from its widened f32 values");
                        match kind {
                            Kind::Sparsemax => mlak::sparsemax(&b, n, &mut got, n, 2, n).unwrap(),
                            Kind::Entmax15 => mlak::entmax15(&b, n, &mut got, n, 2, n).unwrap(),
                            Kind::Alpha(a) => mlak::alpha_entmax(&b, n, &mut got, n, 2, n, &[a]).unwrap(),
                        }
                        kind.run(&wb, n, &mut want, n, 2, n);
                        assert_eq!(got, want, "{kind:?} bf16 input differs from its widened f32 values");
                    }
                });
            }

            #[test]
            fn alpha_backward_extremes() {
                on_isa(ISA, || check_alpha_backward_extremes(ISA));
            }

            #[test]
            fn backward_strided_in_place() {
                on_isa(ISA, || {
                    let (rows, n, stride) = (3, 45, 50);
                    let x = Rng::new(9).vec(rows * stride, -2.0, 2.0);
                    let dy = Rng::new(10).vec(rows * stride, -1.0, 1.0);
                    let mut p = vec![0.0f32; rows * stride];
                    mlak::entmax15(&x, stride, &mut p, stride, rows, n).unwrap();
                    let shape = BackwardShape { rows, n, stride };
                    let mut dx = vec![0.0f32; rows * stride];
                    mlak::entmax15_backward(&p, &dy, &mut dx, shape).unwrap();
                    assert_ran(ISA);
                    for r in 0..rows {
                        let pr: Vec<f64> = p[r * stride..r * stride + n].iter().map(|&v| v as f64).collect();
                        let dyr: Vec<f64> = dy[r * stride..r * stride + n].iter().map(|&v| v as f64).collect();
                        let (want, _) = reference::jvp(&pr, &dyr, 1.5);
                        check_close(&format!("entmax15 backward row {r}"), &dx[r * stride..r * stride + n], &want, 64.0 * EPS);
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

/// Checks the backward kernels of one row against the reference
/// Jacobian-vector product of the kernel's own forward output. The JVP is
/// a weighted mean and difference of values of size |dy| ≤ 1 with weights
/// computed from p, so 64 EPS absolute plus 0.01·n·EPS for the sums bounds
/// its f32 error; d_alpha sums n terms of size up to p·(1 + (ln p)²), which
/// the f64 row arithmetic keeps within 1e-9 of their total.
fn check_backward(isa: Isa, x: &[f32], seed: u64, alpha: f32) {
    let n = x.len();
    let dy = Rng::new(seed).vec(n, -1.0, 1.0);
    let dy64: Vec<f64> = dy.iter().map(|&v| v as f64).collect();
    let shape = BackwardShape { rows: 1, n, stride: n };
    let tol = EPS * (64.0 + 0.01 * n as f64);
    let mut p = vec![0.0f32; n];
    let mut dx = vec![0.0f32; n];

    mlak::sparsemax(x, n, &mut p, n, 1, n).unwrap();
    mlak::sparsemax_backward(&p, &dy, &mut dx, shape).unwrap();
    assert_ran(isa);
    let p64: Vec<f64> = p.iter().map(|&v| v as f64).collect();
    check_close("sparsemax backward", &dx, &reference::jvp(&p64, &dy64, 2.0).0, tol);

    mlak::entmax15(x, n, &mut p, n, 1, n).unwrap();
    mlak::entmax15_backward(&p, &dy, &mut dx, shape).unwrap();
    let p64: Vec<f64> = p.iter().map(|&v| v as f64).collect();
    check_close("entmax15 backward", &dx, &reference::jvp(&p64, &dy64, 1.5).0, tol);

    mlak::alpha_entmax(x, n, &mut p, n, 1, n, &[alpha]).unwrap();
    let mut d_alpha = [0.0f32];
    mlak::alpha_entmax_backward(&p, &dy, &mut dx, shape, &[alpha], Some(&mut d_alpha)).unwrap();
    let p64: Vec<f64> = p.iter().map(|&v| v as f64).collect();
    let (want, want_alpha) = reference::jvp(&p64, &dy64, alpha as f64);
    let p_exact = reference::alpha_entmax(x, alpha as f64);
    let (_, exact_alpha) = reference::jvp(&p_exact, &dy64, alpha as f64);
    // The α kernel runs in f32: g = p^(1−a) = e^((1−a)·ℓ) carries about
    // (|1 − a|·|ℓ| + 4)·EPS relative error from ln and exp, which the mean
    // Σ g·dy / Σ g inherits as an absolute error of the same size, and
    // dx = g·(dy − mean) scales both by g. For α > 2, g exceeds 1 near the
    // support boundary, so the tolerance grows with it.
    let a = alpha as f64 - 1.0;
    let ell_max = p64.iter().filter(|&&v| v > 0.0).map(|v| v.ln().abs()).fold(0.0f64, f64::max);
    for (i, (&g, &w)) in dx.iter().zip(&want).enumerate() {
        let weight = if p64[i] > 0.0 { p64[i].powf(1.0 - a).max(1.0) } else { 1.0 };
        let tol_i = EPS * (64.0 + 0.01 * n as f64 + 4.0 * (1.0 - a).abs() * ell_max) * weight;
        assert!(
            (g as f64 - w).abs() <= tol_i,
            "alpha {alpha} backward index {i}: got {g:e}, want {w:e}, tol {tol_i:e}, p = {:e}, n = {n}",
            p[i]
        );
    }
    let scale: f64 = p64.iter().map(|&v| if v > 0.0 { v * (1.0 + v.ln().powi(2)) } else { 0.0 }).sum();
    // d_alpha = Σ dy·(p·R·(1 − a·ℓ) + p·r·(a·S − 1)) / Σ g cancels between
    // terms, so its f32 error is relative to the sum of their magnitudes.
    // Each term carries the error of ln and exp in ℓ, r and g: at most
    // about (16 + 8·(|1 − a| + a)·|ℓ|)·EPS relative (r has no cancellation
    // of its own, and its closed form for a·|ℓ| ≥ 1 loses at most 2 bits).
    let tol_alpha = EPS * (64.0 + 0.01 * n as f64 + 8.0 * ((1.0 - a).abs() + a) * ell_max) * alpha_magnitude(&p64, &dy64, a);
    assert!(
        (d_alpha[0] as f64 - want_alpha).abs() <= tol_alpha,
        "alpha {alpha} d_alpha: got {:e}, want {want_alpha:e}, tol {tol_alpha:e}, n = {n}",
        d_alpha[0]
    );
    // The same gradient from the exact f64 forward output: for α ≤ 2 the
    // f32 rounding of p moves each term by a few EPS relative. For α > 2
    // entries near the support boundary make the gradient ill-conditioned
    // in p, as in the forward tolerance, so only the check above applies.
    let tol_exact = 64.0 * EPS * scale.max(1.0) + tol_alpha;
    assert!(
        alpha > 2.0 ||
        (d_alpha[0] as f64 - exact_alpha).abs() <= tol_exact,
        "alpha {alpha} d_alpha: got {:e}, from the f64 forward {exact_alpha:e}, tol {tol_exact:e}, n = {n}",
        d_alpha[0]
    );
}

/// Returns Σ |dy|·(p·R·|1 − a·ℓ| + p·r·|a·S − 1|) / Σ g, the scale of the
/// terms whose sum is the α-gradient (see `reference::jvp`), in f64.
fn alpha_magnitude(p: &[f64], dy: &[f64], a: f64) -> f64 {
    let support = || p.iter().zip(dy).filter(|(&v, _)| v > 0.0);
    let r = |v: f64| {
        let l = v.ln();
        let t = -a * l;
        if t.abs() < 1e-4 {
            l * l * 0.5
        } else {
            (t.exp_m1() - t) / (a * a)
        }
    };
    let s: f64 = support().map(|(&v, _)| v * v.ln()).sum();
    let r_sum: f64 = support().map(|(&v, _)| v * r(v)).sum();
    let g_sum: f64 = support().map(|(&v, _)| v.powf(1.0 - a)).sum();
    let total: f64 = support()
        .map(|(&v, &d)| d.abs() * (v * r_sum * (1.0 - a * v.ln()).abs() + v * r(v) * (a * s - 1.0).abs()))
        .sum();
    if g_sum > 0.0 {
        total / g_sum
    } else {
        0.0
    }
}

/// Checks the α-entmax backward pass where g = p^(2−α) leaves the f32
/// range, with subnormal p, and on NaN and all-zero rows.
fn check_alpha_backward_extremes(isa: Isa) {
    let run = |p: &[f32], dy: &[f32], alpha: f32| {
        let n = p.len();
        let shape = BackwardShape { rows: 1, n, stride: n };
        let mut dx = vec![7.0f32; n];
        let mut d_alpha = [7.0f32];
        mlak::alpha_entmax_backward(p, dy, &mut dx, shape, &[alpha], Some(&mut d_alpha)).unwrap();
        (dx, d_alpha[0])
    };
    // α = 4: g = p^(−2) is 1e40 at p = 1e-20, beyond f32. The scaled sums
    // keep the other entries and the α-gradient finite and accurate. The
    // tiny entry's dx = g·(dy − mean) multiplies the rounding of mean by
    // 1e40 (the f64 reference gets 0, the exact value is about 10), so it
    // only has to be a number.
    let p = [0.6f32, 0.4, 1e-20, 0.0];
    let dy = [0.25f32, -0.5, 0.75, 1.0];
    let (dx, d_alpha) = run(&p, &dy, 4.0);
    assert_ran(isa);
    let p64: Vec<f64> = p.iter().map(|&v| v as f64).collect();
    let dy64: Vec<f64> = dy.iter().map(|&v| v as f64).collect();
    let (want, want_alpha) = reference::jvp(&p64, &dy64, 4.0);
    for i in [0, 1, 3] {
        let tol = 1e-5 * want[i].abs().max(1.0);
        assert!((dx[i] as f64 - want[i]).abs() <= tol, "alpha 4 tiny p: dx[{i}] = {:e}, want {:e}", dx[i], want[i]);
    }
    assert!(!dx[2].is_nan(), "alpha 4 tiny p: dx[2] is NaN");
    let tol = 1e-5 * want_alpha.abs().max(1.0);
    assert!((d_alpha as f64 - want_alpha).abs() <= tol, "alpha 4 tiny p: d_alpha = {d_alpha:e}, want {want_alpha:e}");
    // Subnormal p at α = 1.2 goes through the scaled logarithm.
    let p = [0.7f32, 0.3, 1e-41];
    let dy = [0.5f32, -0.25, 1.0];
    let (dx, d_alpha) = run(&p, &dy, 1.2);
    let p64: Vec<f64> = p.iter().map(|&v| v as f64).collect();
    let dy64: Vec<f64> = dy.iter().map(|&v| v as f64).collect();
    let (want, want_alpha) = reference::jvp(&p64, &dy64, 1.2);
    check_close("alpha 1.2 subnormal p", &dx, &want, 1e-6);
    assert!((d_alpha as f64 - want_alpha).abs() <= 1e-6, "alpha 1.2 subnormal p: d_alpha = {d_alpha:e}, want {want_alpha:e}");
    // A NaN in p makes the row and the gradient NaN; a row without a
    // positive p gives zeros.
    let (dx, d_alpha) = run(&[0.5, f32::NAN, 0.5], &[1.0, 2.0, 3.0], 1.3);
    assert!(dx.iter().all(|v| v.is_nan()) && d_alpha.is_nan(), "NaN p: dx {dx:?}, d_alpha {d_alpha}");
    let (dx, d_alpha) = run(&[0.0; 5], &[1.0; 5], 1.3);
    assert_eq!((dx, d_alpha), (vec![0.0; 5], 0.0), "all-zero p");
}

/// Checks short rows in groups of 8 whose spread changes from group to
/// group. Moderate logits give a few candidates per row, which take the
/// one-vector solve. Wide logits give one or two, and narrow logits more
/// than a vector takes, which take the passes. Dyadic values put ties at
/// the support boundary. The short-row body picks its path per group from
/// the counts of the group before, so the sequence crosses every switch.
fn check_short_row_groups(isa: Isa) {
    let spreads = [2.0f32, 8.0, 0.3, 2.0, 0.0, 8.0, 2.0, 0.3, 0.0, 2.0];
    for n in [1usize, 2, 7, 16, 17, 33, 64, 100, 256] {
        let rows = 8 * spreads.len() + 3;
        let mut rng = Rng::new(n as u64);
        let mut data = Vec::with_capacity(rows * n);
        for r in 0..rows {
            let spread = spreads[(r / 8) % spreads.len()];
            let row = rng.vec(n, -1.0, 1.0);
            if spread == 0.0 {
                data.extend(row.iter().map(|v| (v * 8.0).round() * 0.25));
            } else {
                data.extend(row.iter().map(|v| v * spread * 3.0));
            }
        }
        let mut y = vec![f32::NAN; rows * n];
        for kind in [Kind::Sparsemax, Kind::Entmax15] {
            kind.run(&data, n, &mut y, n, rows, n);
            assert_ran(isa);
            let shape = format!("rows={rows} n={n}");
            for r in 0..rows {
                let row = &data[r * n..(r + 1) * n];
                check_row(kind, &y[r * n..(r + 1) * n], row, r, &shape);
            }
        }
    }
}

/// Checks the non-finite and edge policy of every normalizer.
fn check_edge_policy(isa: Isa) {
    let inf = f32::INFINITY;
    let kinds = [Kind::Sparsemax, Kind::Entmax15, Kind::Alpha(1.3), Kind::Alpha(1.0), Kind::Alpha(3.0)];
    for kind in kinds {
        let run1 = |x: &[f32]| {
            let mut y = vec![7.0f32; x.len()];
            kind.run(x, x.len(), &mut y, x.len(), 1, x.len());
            y
        };
        // n = 0 writes nothing and n = 1 gives [1], whatever the value.
        kind.run(&[], 0, &mut [], 0, 3, 0);
        for v in [0.0f32, -1e30, 1e30, -inf] {
            let want = if v == -inf { 0.0 } else { 1.0 };
            assert_eq!(run1(&[v]), vec![want], "{kind:?} n = 1 with x = {v}");
        }
        assert_ran(isa);
        assert_eq!(run1(&[-inf; 21]), vec![0.0; 21], "{kind:?} all -inf row");
        let mut x = vec![0.5f32; 21];
        x[3] = -inf;
        x[20] = -inf;
        let y = run1(&x);
        assert_eq!((y[3], y[20]), (0.0, 0.0), "{kind:?} -inf entries");
        check_row(kind, &y, &x, 0, "some -inf");
        for bad in [f32::NAN, inf] {
            let mut x = vec![0.5f32; 21];
            x[17] = bad;
            assert!(run1(&x).iter().all(|v| v.is_nan()), "{kind:?} row with {bad} must be all NaN");
            x[0] = -inf;
            assert!(run1(&x).iter().all(|v| v.is_nan()), "{kind:?} row with -inf and {bad} must be all NaN");
        }
        // Magnitudes around 1e8: f32 spacing there is 8, so x − max is exact.
        let big: Vec<f32> = (0..40).map(|i| 1e8 + (i % 5) as f32 * 8.0 - (i / 5) as f32 * 16.0).collect();
        check_row(kind, &run1(&big), &big, 0, "1e8 magnitudes");
        let small: Vec<f32> = (0..40).map(|i| -1e8 + (i % 3) as f32 * 0.0625 * 1e-7).collect();
        check_row(kind, &run1(&small), &small, 0, "-1e8 magnitudes");
    }
    // Ties at the sparsemax boundary: entries exactly at τ get exactly 0.
    let sparse = |x: &[f32]| {
        let mut y = vec![7.0f32; x.len()];
        mlak::sparsemax(x, x.len(), &mut y, x.len(), 1, x.len()).unwrap();
        y
    };
    assert_eq!(sparse(&[1.0, 0.0, 0.0]), vec![1.0, 0.0, 0.0], "tie at τ = max − 1");
    assert_eq!(sparse(&[0.5, 0.5, 0.0]), vec![0.5, 0.5, 0.0], "tie at τ = 0");
    assert_eq!(sparse(&[3.0, 2.75, 2.75, 2.5]), vec![0.5, 0.25, 0.25, 0.0], "tie at τ = 2.5");
    let mut long = vec![0.0f32; 100];
    long[50] = 1.0;
    let y = sparse(&long);
    assert_eq!(y[50], 1.0, "the maximum of a row with 99 entries tied at τ");
    assert_eq!(y.iter().filter(|&&v| v == 0.0).count(), 99, "99 entries tied at τ: {y:?}");
    let uniform = sparse(&[0.25f32; 64]);
    assert!(uniform.iter().all(|&v| (v - 1.0 / 64.0).abs() <= 1e-9), "uniform row {uniform:?}");
}

/// Checks α = 2 against sparsemax, α = 1.5 against entmax-1.5 and α → 1
/// against softmax.
fn check_alpha_limits(isa: Isa) {
    let n = 300;
    let x = Rng::new(21).vec(n, -3.0, 3.0);
    let run = |kind: Kind| {
        let mut y = vec![0.0f32; n];
        kind.run(&x, n, &mut y, n, 1, n);
        y
    };
    let sparse = run(Kind::Sparsemax);
    assert_ran(isa);
    assert_eq!(run(Kind::Alpha(2.0)), sparse, "alpha = 2 must equal sparsemax");
    assert_eq!(run(Kind::Alpha(1.5)), run(Kind::Entmax15), "alpha = 1.5 must equal entmax15");
    // The general kernel next to α = 2: p changes by O(|α − 2|) there.
    for alpha in [1.999f32, 2.001] {
        let y = run(Kind::Alpha(alpha));
        for (i, (&a, &b)) in y.iter().zip(&sparse).enumerate() {
            assert!((a - b).abs() <= 5e-3, "alpha {alpha} index {i}: {a} vs sparsemax {b}");
        }
    }
    // α → 1: the distance to softmax shrinks like α − 1 (about 0.5·(α − 1)
    // for this row), down to the f32 noise.
    let mut soft = vec![0.0f32; n];
    mlak::softmax(&x, n, &mut soft, n, 1, n, 1.0).unwrap();
    assert_eq!(run(Kind::Alpha(1.0)), soft, "alpha = 1 must equal softmax");
    let mut previous = f32::INFINITY;
    for alpha in [1.1f32, 1.01, 1.001, 1.0001, 1.000_01, 1.000_000_1] {
        let y = run(Kind::Alpha(alpha));
        let dist = y.iter().zip(&soft).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        let bound = 0.5 * (alpha - 1.0) + 1e-6;
        assert!(dist <= bound, "alpha {alpha}: max distance to softmax {dist:e} exceeds {bound:e}");
        assert!(dist <= previous.max(1e-6), "alpha {alpha}: distance {dist:e} grew from {previous:e}");
        previous = dist;
    }
}

/// The reference JVP against central finite differences of the f64
/// reference forward, for the input gradient and the α-gradient. With
/// h = 1e-6 the truncation error is O(h²) and the rounding error about
/// 1e-16/h, so 1e-7 absolute separates a right formula from a wrong one.
#[test]
fn reference_jvp_matches_finite_differences() {
    let h = 1e-6;
    for (seed, alpha) in [(1u64, 1.3f64), (2, 1.5), (3, 2.0), (4, 2.6), (5, 1.05)] {
        let mut rng = Rng::new(seed);
        let x: Vec<f64> = rng.vec(9, -1.0, 1.0).into_iter().map(|v| v as f64).collect();
        let dy: Vec<f64> = rng.vec(9, -1.0, 1.0).into_iter().map(|v| v as f64).collect();
        let loss = |x: &[f64], alpha: f64| -> f64 {
            reference::alpha_entmax_f64(x, alpha).iter().zip(&dy).map(|(p, d)| p * d).sum()
        };
        let p = reference::alpha_entmax_f64(&x, alpha);
        let (dx, d_alpha) = reference::jvp(&p, &dy, alpha);
        for j in 0..x.len() {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[j] += h;
            down[j] -= h;
            let fd = (loss(&up, alpha) - loss(&down, alpha)) / (2.0 * h);
            assert!((fd - dx[j]).abs() <= 1e-7, "alpha {alpha} dx[{j}]: jvp {:e}, finite difference {fd:e}", dx[j]);
        }
        let fd = (loss(&x, alpha + h) - loss(&x, alpha - h)) / (2.0 * h);
        assert!((fd - d_alpha).abs() <= 1e-7, "alpha {alpha} d_alpha: jvp {d_alpha:e}, finite difference {fd:e}");
    }
    // At α = 1 the α-gradient is a limit; compare with a one-sided
    // difference, whose O(h) error is below 1e-5 here.
    let x: Vec<f64> = Rng::new(8).vec(9, -1.0, 1.0).into_iter().map(|v| v as f64).collect();
    let dy: Vec<f64> = Rng::new(9).vec(9, -1.0, 1.0).into_iter().map(|v| v as f64).collect();
    let loss = |alpha: f64| -> f64 { reference::alpha_entmax_f64(&x, alpha).iter().zip(&dy).map(|(p, d)| p * d).sum() };
    let (_, d_alpha) = reference::jvp(&reference::alpha_entmax_f64(&x, 1.0), &dy, 1.0);
    let fd = (loss(1.0 + 1e-5) - loss(1.0)) / 1e-5;
    assert!((fd - d_alpha).abs() <= 1e-5, "alpha 1 d_alpha: jvp {d_alpha:e}, finite difference {fd:e}");
}

#[test]
fn entmax_rejects_bad_arguments() {
    let x = vec![0.0f32; 20];
    let mut y = vec![0.0f32; 20];
    for alpha in [0.5f32, 0.999, -1.0, f32::NAN, f32::INFINITY] {
        let e = mlak::alpha_entmax(&x, 5, &mut y, 5, 4, 5, &[alpha]).unwrap_err();
        assert_eq!(e.status(), mlak::Status::InvalidArgument);
        assert!(e.message().contains("alpha[0]"), "alpha {alpha}: {}", e.message());
        assert!(e.message().contains(">= 1"), "alpha {alpha}: {}", e.message());
    }
    let e = mlak::alpha_entmax(&x, 5, &mut y, 5, 4, 5, &[1.5, 1.5]).unwrap_err();
    assert!(e.message().contains("alpha has 2 values"), "{}", e.message());
    let e = mlak::alpha_entmax(&x, 5, &mut y, 5, 4, 5, &[1.5, 1.5, 0.5, 1.5]).unwrap_err();
    assert!(e.message().contains("alpha[2] = 0.5"), "{}", e.message());
    let e = mlak::sparsemax(&x, 3, &mut y, 5, 2, 5).unwrap_err();
    assert!(e.message().contains("x_stride = 3"), "{}", e.message());
    let e = mlak::entmax15(&x, 5, &mut y, 5, 5, 5).unwrap_err();
    assert!(e.message().contains("x has 20 elements but the shape needs 25"), "{}", e.message());
    assert_eq!(y, vec![0.0f32; 20], "a rejected call wrote its output");
    let shape = BackwardShape { rows: 4, n: 5, stride: 5 };
    let mut dx = vec![0.0f32; 20];
    let e = mlak::alpha_entmax_backward(&x, &x, &mut dx, shape, &[0.9], None).unwrap_err();
    assert!(e.message().contains("alpha[0] = 0.9"), "{}", e.message());
    let mut d_alpha = [0.0f32; 3];
    let e = mlak::alpha_entmax_backward(&x, &x, &mut dx, shape, &[1.2], Some(&mut d_alpha)).unwrap_err();
    assert!(e.message().contains("d_alpha has 3 elements"), "{}", e.message());
    assert_eq!(dx, vec![0.0f32; 20], "a rejected backward call wrote its output");
}
