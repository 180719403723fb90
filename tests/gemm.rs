//! GEMM under every dispatch level against the f64 reference in
//! `mlak::reference::gemm`.
//!
//! Tolerance: each entry of an f32 product summed over k terms, in any
//! order, lies within γ = k·EPS/(1 − k·EPS) of the exact value relative to
//! Σ|a||b| (the standard forward bound of a dot product). Scaling by alpha,
//! adding beta·C and rounding the result add three more roundings, so every
//! entry is checked against
//!     |got − want| <= (k + 4)·EPS·(|alpha|·Σ_p |A[i,p]||B[p,j]| + |beta|·|C[i,j]|)
//! plus 1e-30 for entries whose exact value is 0. A wrong or missing term
//! moves an entry by about |a||b|, far outside this bound once the data is
//! random. Mixed-precision inputs are widened to f32 exactly, so the same
//! bound holds against the reference on the widened values. A second check
//! against the unrounded f32 data adds the input rounding (see
//! `mixed_tolerance`).

mod common;

use common::{assert_ran, cases, on_isa, Rng, EPS};
use half::{bf16, f16};
use mlak::reference::gemm as reference;
use mlak::{Isa, Layout, Transpose};
use proptest::prelude::*;

/// A strided matrix stored in a buffer with an offset: element (i, j) is at
/// `data[offset + i*rs + j*cs]`.
#[derive(Clone, Debug)]
struct Strided {
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
    offset: usize,
    data: Vec<f32>,
}

impl Strided {
    /// Builds a `rows × cols` matrix with the given strides and leading
    /// offset, filled with random values in [-1, 1); the gaps hold `gap`.
    fn random(rng: &mut Rng, rows: usize, cols: usize, rs: usize, cs: usize, offset: usize, gap: f32) -> Self {
        let len = if rows == 0 || cols == 0 { offset } else { offset + (rows - 1) * rs + (cols - 1) * cs + 1 };
        let mut data = vec![gap; len];
        for i in 0..rows {
            for j in 0..cols {
                data[offset + i * rs + j * cs] = rng.uniform(-1.0, 1.0);
            }
        }
        Strided { rows, cols, rs, cs, offset, data }
    }

    fn get(&self, i: usize, j: usize) -> f32 {
        self.data[self.offset + i * self.rs + j * self.cs]
    }

    fn slice(&self) -> &[f32] {
        &self.data[self.offset..]
    }

    fn slice_mut(&mut self) -> &mut [f32] {
        &mut self.data[self.offset..]
    }
}

/// Checks C after a call against the reference. `c0` is C before the call.
#[allow(clippy::too_many_arguments)]
fn check(
    alpha: f32,
    a: impl Fn(usize, usize) -> f32,
    b: impl Fn(usize, usize) -> f32,
    beta: f32,
    c0: &Strided,
    c: &Strided,
    k: usize,
    shape: &str,
) {
    let (m, n) = (c.rows, c.cols);
    let fa = |i, p| a(i, p) as f64;
    let fb = |p, j| b(p, j) as f64;
    let want = reference::gemm(m, n, k, alpha as f64, fa, fb, beta as f64, |i, j| c0.get(i, j) as f64);
    let scale = reference::abs_product(m, n, k, fa, fb);
    for i in 0..m {
        for j in 0..n {
            let got = c.get(i, j) as f64;
            let w = want[i * n + j];
            let c_term = if beta == 0.0 { 0.0 } else { (beta as f64 * c0.get(i, j) as f64).abs() };
            let tol = (k as f64 + 4.0) * EPS * (alpha.abs() as f64 * scale[i * n + j] + c_term) + 1e-30;
            assert!(
                (got - w).abs() <= tol,
                "C[{i}, {j}]: got {got:e}, want {w:e}, tol {tol:e}, {shape}"
            );
        }
    }
    // Gaps between the elements of C must be untouched.
    let mut inside = vec![false; c.data.len()];
    for i in 0..m {
        for j in 0..n {
            inside[c.offset + i * c.rs + j * c.cs] = true;
        }
    }
    for (idx, (&x, &x0)) in c.data.iter().zip(&c0.data).enumerate() {
        if !inside[idx] {
            assert!(x.to_bits() == x0.to_bits(), "C buffer index {idx} outside the matrix changed: {x0} -> {x}, {shape}");
        }
    }
}

/// Runs one call of the layout/transpose API: builds op(A), op(B) and C with
/// leading dimensions padded by `pad`, runs `mlak::sgemm` and checks C.
#[allow(clippy::too_many_arguments)]
fn run_blas_case(
    rng: &mut Rng,
    layout: Layout,
    ta: Transpose,
    tb: Transpose,
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    beta: f32,
    pad: usize,
    nan_c: bool,
) {
    // NaN in C is only meaningful with beta = 0, where it must not leak.
    let nan_c = nan_c && beta == 0.0;
    // Stored shape of X whose op is rows × cols, and the (rs, cs) of op(X).
    let stored = |t: Transpose, rows: usize, cols: usize| match t {
        Transpose::No => (rows, cols),
        Transpose::Yes => (cols, rows),
    };
    let strides = |rows: usize, cols: usize| match layout {
        Layout::RowMajor => (cols.max(1) + pad, 1, cols.max(1) + pad),
        Layout::ColMajor => (1, rows.max(1) + pad, rows.max(1) + pad),
    };
    let (ar, ac) = stored(ta, m, k);
    let (rs, cs, lda) = strides(ar, ac);
    let a = Strided::random(rng, ar, ac, rs, cs, 0, 7.0);
    let (br, bc) = stored(tb, k, n);
    let (rs, cs, ldb) = strides(br, bc);
    let b = Strided::random(rng, br, bc, rs, cs, 0, 7.0);
    let (rs, cs, ldc) = strides(m, n);
    let mut c = Strided::random(rng, m, n, rs, cs, 0, -3.0);
    if nan_c {
        c.data.iter_mut().for_each(|x| *x = f32::NAN);
    }
    let c0 = c.clone();
    let shape = format!("{layout:?} {ta:?} {tb:?} m={m} n={n} k={k} alpha={alpha} beta={beta} pad={pad} nan_c={nan_c}");
    mlak::sgemm(layout, ta, tb, m, n, k, alpha, &a.data, lda, &b.data, ldb, beta, &mut c.data, ldc).unwrap();
    let op = |x: &Strided, t: Transpose, i: usize, j: usize| match t {
        Transpose::No => x.get(i, j),
        Transpose::Yes => x.get(j, i),
    };
    if nan_c && beta == 0.0 {
        for i in 0..m {
            for j in 0..n {
                assert!(!c.get(i, j).is_nan(), "C[{i}, {j}] is NaN although beta = 0, {shape}");
            }
        }
        let zeros = Strided { data: vec![0.0; c.data.len()], ..c0.clone() };
        // NaN gaps compare by bits, so the check below reads C through a
        // copy whose NaN gaps are replaced by the zeros of its baseline.
        let mut c_check = c.clone();
        for (idx, x) in c_check.data.iter_mut().enumerate() {
            if x.is_nan() {
                *x = zeros.data[idx];
            }
        }
        check(alpha, |i, p| op(&a, ta, i, p), |p, j| op(&b, tb, p, j), 0.0, &zeros, &c_check, k, &shape);
        return;
    }
    check(alpha, |i, p| op(&a, ta, i, p), |p, j| op(&b, tb, p, j), beta, &c0, &c, k, &shape);
}

/// Runs the general strided API on matrices with arbitrary strides and
/// leading offsets, and checks C.
#[allow(clippy::too_many_arguments)]
fn run_strided_case(
    rng: &mut Rng,
    (m, n, k): (usize, usize, usize),
    a_strides: (usize, usize),
    b_strides: (usize, usize),
    c_strides: (usize, usize),
    offset: usize,
    alpha: f32,
    beta: f32,
) {
    let a = Strided::random(rng, m, k, a_strides.0, a_strides.1, offset, 9.0);
    let b = Strided::random(rng, k, n, b_strides.0, b_strides.1, offset, 9.0);
    let mut c = Strided::random(rng, m, n, c_strides.0, c_strides.1, offset, -5.0);
    let c0 = c.clone();
    let shape = format!("m={m} n={n} k={k} a{a_strides:?} b{b_strides:?} c{c_strides:?} offset={offset} alpha={alpha} beta={beta}");
    let (rs_c, cs_c) = c_strides;
    mlak::sgemm_strided(
        m, n, k, alpha, a.slice(), a.rs, a.cs, b.slice(), b.rs, b.cs, beta, c.slice_mut(), rs_c, cs_c,
    )
    .unwrap();
    check(alpha, |i, p| a.get(i, p), |p, j| b.get(p, j), beta, &c0, &c, k, &shape);
}

const LAYOUTS: [Layout; 2] = [Layout::RowMajor, Layout::ColMajor];
const TRANS: [Transpose; 2] = [Transpose::No, Transpose::Yes];
const ALPHAS: [f32; 3] = [0.0, 1.0, -0.75];
const BETAS: [f32; 3] = [0.0, 1.0, 0.5];

/// Strategy: a shape around the tile edges of every level (MR up to 12,
/// NR up to 32, skinny threshold 16), layouts, transposes, alpha, beta,
/// leading-dimension padding, NaN in C and a seed.
fn blas_case() -> impl Strategy<Value = (usize, usize, usize, usize, usize, usize, usize, usize, usize, bool, u64)> {
    (
        0usize..40,
        0usize..70,
        0usize..40,
        0usize..2,
        0usize..2,
        0usize..2,
        0usize..3,
        0usize..3,
        0usize..3,
        any::<bool>(),
        any::<u64>(),
    )
}

macro_rules! isa_suite {
    ($($module:ident => $isa:expr),* $(,)?) => {$(
        mod $module {
            use super::*;
            const ISA: Isa = $isa;

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(cases(64)))]

                #[test]
                fn sgemm_matches_reference(case in blas_case()) {
                    let (m, n, k, l, ta, tb, alpha, beta, pad, nan_c, seed) = case;
                    on_isa(ISA, || {
                        let mut rng = Rng::new(seed);
                        let shape = (m, n, k);
                        run_blas_case(&mut rng, LAYOUTS[l], TRANS[ta], TRANS[tb], shape, ALPHAS[alpha], BETAS[beta], pad, nan_c);
                        if m > 0 && n > 0 {
                            assert_ran(ISA);
                        }
                    });
                }

                #[test]
                fn strided_matches_reference(
                    m in 0usize..30, n in 0usize..40, k in 0usize..30,
                    sa in 0usize..4, sb in 0usize..4, sc in 0usize..4,
                    offset in 0usize..3, alpha in 0usize..3, beta in 0usize..3, seed in any::<u64>(),
                ) {
                    on_isa(ISA, || {
                        let mut rng = Rng::new(seed);
                        // Stride pairs: row-major, column-major, both padded,
                        // and (for A and B) a zero stride that repeats a row.
                        let pick = |s: usize, rows: usize, cols: usize| match s {
                            0 => (cols, 1),
                            1 => (1, rows),
                            2 => (2 * cols + 3, 2),
                            _ => (cols + 1, 1),
                        };
                        let a_st = if sa == 3 { (0, 1) } else { pick(sa, m, k) };
                        let b_st = pick(sb, k, n);
                        let c_st = pick(sc, m, n);
                        run_strided_case(&mut rng, (m, n, k), a_st, b_st, c_st, offset, ALPHAS[alpha], BETAS[beta]);
                    });
                }
            }

            #[test]
            fn tile_edges_swept() {
                on_isa(ISA, || {
                    let mut rng = Rng::new(11);
                    for m in 0..=17 {
                        for n in 0..=33 {
                            for k in [0usize, 1, 7, 8, 9, 17] {
                                run_blas_case(&mut rng, Layout::RowMajor, Transpose::No, Transpose::No, (m, n, k), 1.0, 0.5, 1, false);
                                if m > 0 && n > 0 {
                                    assert_ran(ISA);
                                }
                            }
                        }
                    }
                });
            }

            #[test]
            fn all_layouts_and_transposes() {
                on_isa(ISA, || {
                    let mut rng = Rng::new(12);
                    for layout in LAYOUTS {
                        for ta in TRANS {
                            for tb in TRANS {
                                for shape in [(13, 37, 19), (40, 5, 33), (3, 50, 20), (25, 70, 9)] {
                                    for (alpha, beta) in [(1.0, 0.0), (-0.75, 0.5), (0.0, 0.5), (1.0, 1.0)] {
                                        run_blas_case(&mut rng, layout, ta, tb, shape, alpha, beta, 3, false);
                                        run_blas_case(&mut rng, layout, ta, tb, shape, alpha, 0.0, 0, true);
                                    }
                                }
                            }
                        }
                    }
                });
            }

            #[test]
            fn large_k_packed_and_skinny() {
                on_isa(ISA, || {
                    let mut rng = Rng::new(13);
                    // Depth well past any kc block and any stack buffer.
                    for shape in [(20, 40, 5000), (3, 300, 5000), (300, 2, 5000)] {
                        for tb in TRANS {
                            run_blas_case(&mut rng, Layout::RowMajor, Transpose::No, tb, shape, 1.0, 0.5, 0, false);
                            assert_ran(ISA);
                        }
                    }
                });
            }

            #[test]
            fn skinny_shapes() {
                on_isa(ISA, || {
                    let mut rng = Rng::new(14);
                    for small in [1usize, 2, 3, 4, 7, 8, 9, 15, 16, 17] {
                        for big in [17usize, 64, 257, 300] {
                            for k in [1usize, 15, 64, 130] {
                                for ta in TRANS {
                                    for tb in TRANS {
                                        let layout = Layout::RowMajor;
                                        run_blas_case(&mut rng, layout, ta, tb, (small, big, k), -0.75, 0.5, 2, false);
                                        run_blas_case(&mut rng, layout, ta, tb, (big, small, k), 1.0, 0.0, 0, true);
                                    }
                                }
                            }
                        }
                    }
                    assert_ran(ISA);
                });
            }

            #[test]
            fn skinny_rows_wider_than_block() {
                on_isa(ISA, || {
                    let mut rng = Rng::new(17);
                    // The row form keeps a quarter of L2 of C per block, at
                    // least 256 columns: these widths span several blocks on
                    // a 1 MiB L2 and on the 512 KiB fallback.
                    for shape in [(16usize, 4200usize, 9usize), (3, 22_000, 5), (1, 66_000, 3), (16, 300, 20)] {
                        run_blas_case(&mut rng, Layout::RowMajor, Transpose::No, Transpose::No, shape, -0.75, 0.5, 0, false);
                        run_blas_case(&mut rng, Layout::RowMajor, Transpose::No, Transpose::No, shape, 1.0, 0.0, 1, true);
                        assert_ran(ISA);
                    }
                });
            }

            #[test]
            fn medium_rows_transposed_b() {
                on_isa(ISA, || {
                    let mut rng = Rng::new(16);
                    // x·Wᵀ with W row-major takes the dot form up to 128
                    // rows; depth 1500 at 100 or more rows splits into
                    // depth blocks on a 1 MiB L2, and 129 rows falls back
                    // to the packed path.
                    for m in [17usize, 33, 64, 100, 128, 129] {
                        for k in [1usize, 257, 1500] {
                            let shape = (m, 70, k);
                            run_blas_case(&mut rng, Layout::RowMajor, Transpose::No, Transpose::Yes, shape, -0.75, 0.5, 1, false);
                            run_blas_case(&mut rng, Layout::RowMajor, Transpose::No, Transpose::Yes, shape, 1.0, 0.0, 0, true);
                            run_blas_case(&mut rng, Layout::ColMajor, Transpose::Yes, Transpose::No, shape, 1.0, 0.0, 2, true);
                            assert_ran(ISA);
                        }
                    }
                });
            }

            #[test]
            fn threaded_products() {
                on_isa(ISA, || {
                    mlak::set_num_threads(0);
                    let mut rng = Rng::new(15);
                    // Each has more than 2^22 multiply-adds, so it splits
                    // across threads when the machine has several cores.
                    for shape in [(257, 261, 100), (600, 40, 300), (8, 3000, 400)] {
                        run_blas_case(&mut rng, Layout::RowMajor, Transpose::No, Transpose::No, shape, 1.0, 0.5, 1, false);
                        assert_ran(ISA);
                    }
                });
            }

            #[test]
            fn mixed_column_major_b_matches() {
                on_isa(ISA, || {
                    // Column-contiguous f16/bf16 B, as in x·Wᵀ with W stored
                    // row-major: the dot form (up to 128 rows, with depth
                    // blocks at 1500) and the packed path (150 rows).
                    let shapes = [(2usize, 40usize, 50usize), (5, 300, 33), (1, 17, 1), (30, 45, 20), (100, 40, 1500), (150, 40, 37)];
                    for (m, n, k) in shapes {
                        let mut rng = Rng::new((m * 1000 + n) as u64);
                        let a = rng.vec(m * k, -1.0, 1.0);
                        let b: Vec<f32> = rng.vec(k * n, -1.0, 1.0);
                        let b_bf: Vec<bf16> = b.iter().map(|&x| bf16::from_f32(x)).collect();
                        let b_h: Vec<f16> = b.iter().map(|&x| f16::from_f32(x)).collect();
                        let mut c = vec![f32::NAN; m * n];
                        mlak::gemm_mixed(m, n, k, 1.0, &a, k, 1, &b_bf, 1, k, 0.0, &mut c, n, 1).unwrap();
                        assert_ran(ISA);
                        check_widened(&c, &a, &|p, j| b_bf[j * k + p].to_f32(), (m, n, k), "bf16 column-major B");
                        mlak::gemm_mixed(m, n, k, -0.5, &a, k, 1, &b_h, 1, k, 0.0, &mut c, n, 1).unwrap();
                        let c_half: Vec<f32> = c.iter().map(|x| -2.0 * x).collect();
                        check_widened(&c_half, &a, &|p, j| b_h[j * k + p].to_f32(), (m, n, k), "f16 column-major B");
                    }
                });
            }

            #[test]
            fn mixed_skinny_shapes() {
                on_isa(ISA, || {
                    // Half-precision B in both skinny forms, around the
                    // vector steps of every ISA (8 to 32 columns per step)
                    // and the 8-row depth blocks of the row form.
                    for m in [1usize, 2, 3, 4, 8, 16] {
                        for n in [17usize, 31, 32, 33, 69, 300] {
                            for k in [1usize, 7, 8, 9, 17, 64] {
                                run_half_skinny_case((m * 10_000 + n * 100 + k) as u64, (m, n, k));
                                assert_ran(ISA);
                            }
                        }
                    }
                    // Wider than one block of C of the row form: 4096
                    // columns at 16 rows and 65536 at 1 row on a 1 MiB L2.
                    run_half_skinny_case(1, (16, 4200, 9));
                    run_half_skinny_case(2, (1, 66_000, 3));
                    assert_ran(ISA);
                    // More than 2^22 multiply-adds each, so they split into
                    // column strips across threads on a machine with
                    // several cores (unless MLAK_NUM_THREADS caps it).
                    run_half_skinny_case(3, (8, 3000, 400));
                    run_half_skinny_case(4, (1, 3000, 1500));
                    assert_ran(ISA);
                });
            }

            #[test]
            fn mixed_precision_matches() {
                on_isa(ISA, || {
                    // The last shape is deeper than two depth blocks of the
                    // bf16 kernel, which are at most 2048 deep, so the
                    // packed path accumulates over several blocks.
                    let shapes = [(1u64, (13usize, 45usize, 37usize)), (2, (3, 200, 64)), (3, (70, 33, 300)), (4, (37, 50, 4200))];
                    for (seed, shape) in shapes {
                        run_mixed_case(seed, shape);
                        assert_ran(ISA);
                    }
                });
            }
        }
    )*};
}

isa_suite!(scalar => Isa::Scalar, avx2 => Isa::Avx2, avx512 => Isa::Avx512, neon => Isa::Neon);

/// Tolerance of a mixed-precision entry against the unrounded f32 data:
/// each input carries a relative rounding error of at most u (2^-9 for bf16
/// with its 8-bit significand, 2^-12 for f16 with 11 bits), so each product
/// is off by at most (u_a + u_b + u_a·u_b)·|a||b|, on top of the f32 bound.
fn mixed_tolerance(u_a: f64, u_b: f64, k: usize, scale: f64) -> f64 {
    ((u_a + u_b + u_a * u_b) + (k as f64 + 4.0) * EPS) * scale + 1e-30
}

/// Runs a skinny product with f16 or bf16 B, stored row-major (the row
/// form) or column-major (the dot form), against f32, bf16 and nearly bf16
/// A, with alpha = 1, beta = 0 and with alpha = -0.75, beta = 0.5 on
/// random C. The
/// inputs are exact in their types, so the f32 bound of the module comment
/// holds against the reference on the widened values.
fn run_half_skinny_case(seed: u64, (m, n, k): (usize, usize, usize)) {
    let mut rng = Rng::new(seed);
    let a = rng.vec(m * k, -1.0, 1.0);
    let b = rng.vec(k * n, -1.0, 1.0);
    let c0 = rng.vec(m * n, -1.0, 1.0);
    let a_bf: Vec<bf16> = a.iter().map(|&x| bf16::from_f32(x)).collect();
    let a_bf_wide: Vec<f32> = a_bf.iter().map(|x| x.to_f32()).collect();
    let b_bf: Vec<bf16> = b.iter().map(|&x| bf16::from_f32(x)).collect();
    let b_h: Vec<f16> = b.iter().map(|&x| f16::from_f32(x)).collect();
    let b_bf_wide: Vec<f32> = b_bf.iter().map(|x| x.to_f32()).collect();
    let b_h_wide: Vec<f32> = b_h.iter().map(|x| x.to_f32()).collect();

    let check = |what: &str, c: &[f32], a_wide: &[f32], b_wide: &[f32], (rs_b, cs_b): (usize, usize), alpha: f32, beta: f32| {
        let fa = |i: usize, p: usize| a_wide[i * k + p] as f64;
        let fb = |p: usize, j: usize| b_wide[p * rs_b + j * cs_b] as f64;
        let want = reference::gemm(m, n, k, alpha as f64, fa, fb, beta as f64, |i, j| c0[i * n + j] as f64);
        let scale = reference::abs_product(m, n, k, fa, fb);
        for idx in 0..m * n {
            let bound = alpha.abs() as f64 * scale[idx] + beta.abs() as f64 * (c0[idx] as f64).abs();
            let tol = (k as f64 + 4.0) * EPS * bound + 1e-30;
            let got = c[idx] as f64;
            assert!(
                (got - want[idx]).abs() <= tol,
                "{what} C[{idx}]: got {got:e}, want {:e}, tol {tol:e}, m={m} n={n} k={k} alpha={alpha} beta={beta}",
                want[idx]
            );
        }
    };

    for (alpha, beta) in [(1.0f32, 0.0f32), (-0.75, 0.5)] {
        for (layout, strides) in [("row-major", (n, 1)), ("column-major", (1, k))] {
            // B in the chosen layout: element (p, j) at p * rs_b + j * cs_b.
            let place = |wide: &[f32], out_len: usize| {
                let mut out = vec![0.0f32; out_len];
                for p in 0..k {
                    for j in 0..n {
                        out[p * strides.0 + j * strides.1] = wide[p * n + j];
                    }
                }
                out
            };
            let bf_placed: Vec<bf16> = place(&b_bf_wide, k * n).iter().map(|&x| bf16::from_f32(x)).collect();
            let h_placed: Vec<f16> = place(&b_h_wide, k * n).iter().map(|&x| f16::from_f32(x)).collect();
            let bf_wide_placed = place(&b_bf_wide, k * n);
            let h_wide_placed = place(&b_h_wide, k * n);
            let (rs_b, cs_b) = strides;

            let mut c = c0.clone();
            mlak::gemm_mixed(m, n, k, alpha, &a, k, 1, &bf_placed, rs_b, cs_b, beta, &mut c, n, 1).unwrap();
            check(&format!("f32 x bf16 {layout} B"), &c, &a, &bf_wide_placed, strides, alpha, beta);

            let mut c = c0.clone();
            mlak::gemm_mixed(m, n, k, alpha, &a_bf, k, 1, &bf_placed, rs_b, cs_b, beta, &mut c, n, 1).unwrap();
            check(&format!("bf16 x bf16 {layout} B"), &c, &a_bf_wide, &bf_wide_placed, strides, alpha, beta);

            // bf16 values but for the last one, whose low 16 bits (worth
            // half a bf16 step) a bf16 dot-product kernel would drop: those
            // kernels must take only bf16-exact A.
            let mut a_near = a_bf_wide.clone();
            if let Some(last) = a_near.last_mut() {
                *last = f32::from_bits(last.to_bits() | 0x7fff);
            }
            let mut c = c0.clone();
            mlak::gemm_mixed(m, n, k, alpha, &a_near, k, 1, &bf_placed, rs_b, cs_b, beta, &mut c, n, 1).unwrap();
            check(&format!("near-bf16 f32 x bf16 {layout} B"), &c, &a_near, &bf_wide_placed, strides, alpha, beta);

            let mut c = c0.clone();
            mlak::gemm_mixed(m, n, k, alpha, &a, k, 1, &h_placed, rs_b, cs_b, beta, &mut c, n, 1).unwrap();
            check(&format!("f32 x f16 {layout} B"), &c, &a, &h_wide_placed, strides, alpha, beta);
        }
    }
}

/// Runs every pairing of f32, f16 and bf16 for A and B on row-major data.
fn run_mixed_case(seed: u64, (m, n, k): (usize, usize, usize)) {
    let mut rng = Rng::new(seed);
    let a = rng.vec(m * k, -1.0, 1.0);
    let b = rng.vec(k * n, -1.0, 1.0);
    let a16: Vec<f16> = a.iter().map(|&x| f16::from_f32(x)).collect();
    let b16: Vec<f16> = b.iter().map(|&x| f16::from_f32(x)).collect();
    let abf: Vec<bf16> = a.iter().map(|&x| bf16::from_f32(x)).collect();
    let bbf: Vec<bf16> = b.iter().map(|&x| bf16::from_f32(x)).collect();
    const U_F32: f64 = 0.0;
    const U_F16: f64 = 1.0 / 4096.0;
    const U_BF16: f64 = 1.0 / 512.0;

    let run = |name: &str, wa: &dyn Fn(usize) -> f32, wb: &dyn Fn(usize) -> f32, ua: f64, ub: f64, c: &mut [f32]| {
        let fa = |i: usize, p: usize| wa(i * k + p) as f64;
        let fb = |p: usize, j: usize| wb(p * n + j) as f64;
        let exact = reference::gemm(m, n, k, 1.0, fa, fb, 0.0, |_, _| 0.0);
        let scale = reference::abs_product(m, n, k, fa, fb);
        let orig = reference::gemm(m, n, k, 1.0, |i, p| a[i * k + p] as f64, |p, j| b[p * n + j] as f64, 0.0, |_, _| 0.0);
        for idx in 0..m * n {
            let got = c[idx] as f64;
            let tol = (k as f64 + 4.0) * EPS * scale[idx] + 1e-30;
            assert!((got - exact[idx]).abs() <= tol, "{name} C[{idx}]: got {got:e}, want {:e} (widened inputs), tol {tol:e}, m={m} n={n} k={k}", exact[idx]);
            let tol = mixed_tolerance(ua, ub, k, scale[idx]);
            assert!((got - orig[idx]).abs() <= tol, "{name} C[{idx}]: got {got:e}, want {:e} (f32 inputs), tol {tol:e}, m={m} n={n} k={k}", orig[idx]);
        }
    };

    let mut c = vec![f32::NAN; m * n];
    mlak::gemm_mixed(m, n, k, 1.0, &abf, k, 1, &bbf, n, 1, 0.0, &mut c, n, 1).unwrap();
    run("bf16 x bf16", &|i| abf[i].to_f32(), &|i| bbf[i].to_f32(), U_BF16, U_BF16, &mut c);
    mlak::gemm_mixed(m, n, k, 1.0, &a16, k, 1, &b16, n, 1, 0.0, &mut c, n, 1).unwrap();
    run("f16 x f16", &|i| a16[i].to_f32(), &|i| b16[i].to_f32(), U_F16, U_F16, &mut c);
    mlak::gemm_mixed(m, n, k, 1.0, &a, k, 1, &bbf, n, 1, 0.0, &mut c, n, 1).unwrap();
    run("f32 x bf16", &|i| a[i], &|i| bbf[i].to_f32(), U_F32, U_BF16, &mut c);
    mlak::gemm_mixed(m, n, k, 1.0, &abf, k, 1, &b16, n, 1, 0.0, &mut c, n, 1).unwrap();
    run("bf16 x f16", &|i| abf[i].to_f32(), &|i| b16[i].to_f32(), U_BF16, U_F16, &mut c);
    mlak::gemm_mixed(m, n, k, 1.0, &a16, k, 1, &b, n, 1, 0.0, &mut c, n, 1).unwrap();
    run("f16 x f32", &|i| a16[i].to_f32(), &|i| b[i], U_F16, U_F32, &mut c);
}

#[test]
fn empty_products_touch_nothing() {
    let a = [1.0f32; 4];
    let b = [1.0f32; 4];
    let mut c = [f32::NAN; 4];
    mlak::sgemm_strided(0, 2, 2, 1.0, &a, 2, 1, &b, 2, 1, 0.0, &mut c, 2, 1).unwrap();
    mlak::sgemm_strided(2, 0, 2, 1.0, &a, 2, 1, &b, 2, 1, 0.0, &mut c, 2, 1).unwrap();
    mlak::sgemm_strided(0, 0, 0, 1.0, &[], 0, 0, &[], 0, 0, 0.0, &mut [], 0, 0).unwrap();
    assert!(c.iter().all(|x| x.is_nan()), "an empty product wrote to C: {c:?}");
}

#[test]
fn alpha_zero_ignores_nan_inputs() {
    let a = [f32::NAN; 4];
    let b = [f32::INFINITY; 4];
    let mut c = [1.0f32, 2.0, 3.0, 4.0];
    mlak::sgemm_strided(2, 2, 2, 0.0, &a, 2, 1, &b, 2, 1, 0.5, &mut c, 2, 1).unwrap();
    assert_eq!(c, [0.5, 1.0, 1.5, 2.0]);
    let mut c = [f32::NAN; 4];
    mlak::sgemm_strided(2, 2, 0, 1.0, &[], 0, 0, &[], 0, 0, 0.0, &mut c, 2, 1).unwrap();
    assert_eq!(c, [0.0; 4], "k = 0 with beta = 0 must give zeros without reading C");
}

#[test]
fn invalid_arguments_rejected() {
    let a = [1.0f32; 6];
    let b = [1.0f32; 6];
    let mut c = [7.0f32; 4];
    let short = mlak::sgemm_strided(2, 2, 3, 1.0, &a[..5], 3, 1, &b, 2, 1, 0.0, &mut c, 2, 1).unwrap_err();
    assert_eq!(short.status(), mlak::Status::InvalidArgument, "{short}");
    assert!(short.message().contains('a'), "{short}");
    let aliased = mlak::sgemm_strided(2, 2, 3, 1.0, &a, 3, 1, &b, 2, 1, 0.0, &mut c, 1, 1).unwrap_err();
    assert_eq!(aliased.status(), mlak::Status::InvalidArgument, "{aliased}");
    let ld = mlak::sgemm(Layout::RowMajor, Transpose::No, Transpose::No, 2, 2, 3, 1.0, &a, 2, &b, 2, 0.0, &mut c, 2)
        .unwrap_err();
    assert!(ld.message().contains("lda"), "{ld}");
    assert_eq!(c, [7.0; 4], "a rejected call wrote to C");
}

#[test]
fn cblas_reports_parameter_position() {
    use mlak::ffi::{cblas_sgemm, mlak_blas_last_error_parameter, MLAK_CBLAS_NO_TRANS as N, MLAK_CBLAS_ROW_MAJOR as R};
    let a = [1.0f32; 16];
    let b = [1.0f32; 16];
    let mut c = [42.0f32; 16];
    // (order, trans_a, m, lda, ldc, expected INFO)
    let cases = [(7, N, 2, 2, 2, 1), (R, 0, 2, 2, 2, 2), (R, N, -1, 2, 2, 4), (R, N, 2, 1, 2, 9), (R, N, 2, 2, 1, 14)];
    for (order, ta, m, lda, ldc, want) in cases {
        cblas_sgemm(order, ta, N, m, 2, 2, 1.0, a.as_ptr(), lda, b.as_ptr(), 2, 0.0, c.as_mut_ptr(), ldc);
        let info = mlak_blas_last_error_parameter();
        assert_eq!(info, want, "INFO for order={order} trans_a={ta} m={m} lda={lda} ldc={ldc}");
        assert!(c.iter().all(|&x| x == 42.0), "a rejected call wrote to C: {c:?}");
    }
    cblas_sgemm(R, N, N, 2, 2, 2, 1.0, a.as_ptr(), 2, b.as_ptr(), 2, 0.0, c.as_mut_ptr(), 2);
    assert_eq!(mlak_blas_last_error_parameter(), 0, "a valid call must reset INFO");
    assert_eq!(&c[..4], &[2.0; 4]);
}

#[test]
fn fortran_sgemm_reports_parameter_position() {
    use mlak::ffi::{mlak_blas_last_error_parameter, sgemm_};
    let (a, b) = ([1.0f32; 16], [1.0f32; 16]);
    let mut c = [42.0f32; 16];
    let (alpha, beta) = (1.0f32, 0.0f32);
    // (transa, m, lda, ldb, ldc, expected INFO)
    let cases = [(b'X', 2, 2, 2, 2, 1), (b'N', -1, 2, 2, 2, 3), (b'N', 3, 2, 2, 3, 8), (b'N', 2, 2, 1, 2, 10), (b'N', 3, 3, 2, 2, 13)];
    for (ta, m, lda, ldb, ldc, want) in cases {
        let (ta, tb, n, k) = (ta as std::ffi::c_char, b'N' as std::ffi::c_char, 2, 2);
        // SAFETY: every pointer addresses a live local of the right type,
        // and the buffers hold 16 elements, more than any shape here spans.
        unsafe {
            sgemm_(&ta, &tb, &m, &n, &k, &alpha, a.as_ptr(), &lda, b.as_ptr(), &ldb, &beta, c.as_mut_ptr(), &ldc)
        };
        assert_eq!(mlak_blas_last_error_parameter(), want, "INFO for transa={ta} m={m} lda={lda} ldb={ldb} ldc={ldc}");
        assert!(c.iter().all(|&x| x == 42.0), "a rejected call wrote to C: {c:?}");
    }
}

/// Checks a row-major C = A·B with f32 A (row-major) and widened B given as
/// a closure, with the f32 bound of the module comment.
fn check_widened(c: &[f32], a: &[f32], b: &dyn Fn(usize, usize) -> f32, (m, n, k): (usize, usize, usize), what: &str) {
    let fa = |i: usize, p: usize| a[i * k + p] as f64;
    let fb = |p: usize, j: usize| b(p, j) as f64;
    let want = reference::gemm(m, n, k, 1.0, fa, fb, 0.0, |_, _| 0.0);
    let scale = reference::abs_product(m, n, k, fa, fb);
    for idx in 0..m * n {
        // The extra 2 EPS covers the scaling by -0.5 and back by -2.
        let tol = (k as f64 + 6.0) * EPS * scale[idx] + 1e-30;
        let got = c[idx] as f64;
        assert!((got - want[idx]).abs() <= tol, "{what} C[{idx}]: got {got:e}, want {:e}, tol {tol:e}, m={m} n={n} k={k}", want[idx]);
    }
}
