//! Vector erf, erfc and tanh over [`SimdF32`], for the activation kernels.
//!
//! The polynomial coefficients are weighted least-squares fits (iterated
//! toward minimax) of the f64 functions, made for this crate with numpy on
//! 3000 to 4000 Chebyshev nodes of each interval. The error bounds below
//! are measured by the `erf_tanh_error_bound` test of `tests/glue.rs`,
//! which sweeps every 61st f32 of the relevant range on every instruction
//! set.

use super::{exp, SimdF32};

/// Maximum absolute error of [`erf`] over all finite f32 inputs, as
/// measured by the sweep test: 1.25e-7 near x = 0.94 on the vector levels
/// and 1.38e-7 near x = 0.99 on the scalar level, whose `fma` rounds twice
/// (about 2 ulp there).
pub const ERF_MAX_ABS_ERROR: f32 = 1.5e-7;
/// Maximum absolute error of [`tanh`] over all finite f32 inputs.
pub const TANH_MAX_ABS_ERROR: f32 = 1.2e-7;
/// Maximum relative error of [`tanh`] over all finite f32 inputs.
pub const TANH_MAX_REL_ERROR: f32 = 3.0e-7;

/// Returns erf(x)/x evaluated as a polynomial in x², accurate for |x| <= 1
/// (fit error 1.2e-9 relative).
#[inline(always)]
fn erf_over_x<S: SimdF32>(s: S, x2: S::V) -> S::V {
    let mut p = s.splat(7.854_199e-5);
    p = s.fma(p, x2, s.splat(-8.010_305e-4));
    p = s.fma(p, x2, s.splat(5.188_341_7e-3));
    p = s.fma(p, x2, s.splat(-2.685_382e-2));
    p = s.fma(p, x2, s.splat(1.128_358_5e-1));
    p = s.fma(p, x2, s.splat(-3.761_262_6e-1));
    // The constant term of the fit equals 2/√π to f32 precision.
    s.fma(p, x2, s.splat(std::f32::consts::FRAC_2_SQRT_PI))
}

/// Computes erfc(a) lane-wise for a >= 1 (lanes below 1 give unspecified
/// values). The result is e^(−a²)·Q(t) with t = 1/(1 + a/2) and Q a degree-8
/// polynomial fitted to erfc(a)·e^(a²) on [1, 9.3] (fit error 4.8e-9
/// relative). a² is split into a rounded part and its FMA residual so that
/// the rounding of a² does not reach the exponential. The scalar level's
/// `fma` rounds twice, so there the residual is 0 and the relative error
/// grows by up to a²·2^-24. Lanes above 9.3,
/// where erfc is below 3e-39, give 0.
#[inline(always)]
pub fn erfc_ge1<S: SimdF32>(s: S, a: S::V) -> S::V {
    const A_MAX: f32 = 9.3;
    let ac = s.min(a, s.splat(A_MAX));
    let t = s.div(s.splat(1.0), s.fma(ac, s.splat(0.5), s.splat(1.0)));
    let mut q = s.splat(7.790_493e-2);
    q = s.fma(q, t, s.splat(-1.749_708_3e-1));
    q = s.fma(q, t, s.splat(1.055_030_3e-2));
    q = s.fma(q, t, s.splat(1.169_928_3e-1));
    q = s.fma(q, t, s.splat(1.523_497_3e-1));
    q = s.fma(q, t, s.splat(2.546_973e-1));
    q = s.fma(q, t, s.splat(2.806_717_4e-1));
    q = s.fma(q, t, s.splat(2.822_320_1e-1));
    q = s.fma(q, t, s.splat(-5.516_529_6e-6));
    let a2 = s.mul(ac, ac);
    let a2_lo = s.fma(ac, ac, s.sub(s.splat(0.0), a2));
    // e^(−a² − lo) ≈ e^(−a²)·(1 − lo), with |lo| <= ulp(a²)/2.
    let e = s.mul(exp(s, s.sub(s.splat(0.0), a2)), s.sub(s.splat(1.0), a2_lo));
    let r = s.mul(e, q);
    s.select(s.gt(a, s.splat(A_MAX)), s.splat(0.0), r)
}

/// Computes erf(x) lane-wise: a polynomial for |x| <= 1 and 1 − erfc(|x|)
/// with the sign of x above. ±inf gives ±1 and NaN gives NaN. Error bound:
/// [`ERF_MAX_ABS_ERROR`].
#[inline(always)]
pub fn erf<S: SimdF32>(s: S, x: S::V) -> S::V {
    let a = s.abs(x);
    let small = s.mul(x, erf_over_x(s, s.mul(x, x)));
    let big = s.sub(s.splat(1.0), erfc_ge1(s, a));
    let big = s.select(s.lt(x, s.splat(0.0)), s.sub(s.splat(0.0), big), big);
    let y = s.select(s.gt(a, s.splat(1.0)), big, small);
    s.select(s.is_nan(x), x, y)
}

/// Computes the standard normal CDF Φ(x) = erfc(−x/√2)/2 lane-wise,
/// keeping the relative accuracy of erfc in the lower tail, where
/// 1 + erf(x/√2) would cancel. NaN gives NaN.
#[inline(always)]
pub fn normal_cdf<S: SimdF32>(s: S, x: S::V) -> S::V {
    let u = s.mul(x, s.splat(std::f32::consts::FRAC_1_SQRT_2));
    let a = s.abs(u);
    let half = s.splat(0.5);
    // |u| <= 1: Φ = 1/2 + (u/2)·(erf(u)/u).
    let small = s.fma(s.mul(u, half), erf_over_x(s, s.mul(u, u)), half);
    // |u| > 1: the tail erfc(|u|)/2 directly below, its complement above.
    let tail = s.mul(erfc_ge1(s, a), half);
    let big = s.select(s.lt(u, s.splat(0.0)), tail, s.sub(s.splat(1.0), tail));
    let y = s.select(s.gt(a, s.splat(1.0)), big, small);
    s.select(s.is_nan(x), x, y)
}

/// Computes tanh(x) lane-wise: x + x³·P(x²) for |x| < 0.625 (fit error
/// 4.4e-9 relative) and 1 − 2/(e^(2|x|) + 1) with the sign of x above,
/// saturating to ±1 beyond |x| = 10. NaN gives NaN. Error bounds:
/// [`TANH_MAX_ABS_ERROR`] and [`TANH_MAX_REL_ERROR`].
#[inline(always)]
pub fn tanh<S: SimdF32>(s: S, x: S::V) -> S::V {
    let a = s.abs(x);
    let x2 = s.mul(x, x);
    let mut p = s.splat(-5.704_984e-3);
    p = s.fma(p, x2, s.splat(2.063_908_6e-2));
    p = s.fma(p, x2, s.splat(-5.373_971_6e-2));
    p = s.fma(p, x2, s.splat(1.333_144_2e-1));
    p = s.fma(p, x2, s.splat(-3.333_328e-1));
    let small = s.fma(s.mul(x2, x), p, x);

    let ac = s.min(a, s.splat(10.0));
    let e = exp(s, s.add(ac, ac));
    let big = s.sub(s.splat(1.0), s.div(s.splat(2.0), s.add(e, s.splat(1.0))));
    let big = s.select(s.lt(x, s.splat(0.0)), s.sub(s.splat(0.0), big), big);
    let y = s.select(s.lt(a, s.splat(0.625)), small, big);
    s.select(s.is_nan(x), x, y)
}

/// Computes the logistic sigmoid 1/(1 + e^(−x)) lane-wise. Below x = −88.4
/// the result is 0 (the exact value is below 4e-39); NaN gives NaN.
#[inline(always)]
pub fn sigmoid<S: SimdF32>(s: S, x: S::V) -> S::V {
    let e = exp(s, s.sub(s.splat(0.0), x));
    s.div(s.splat(1.0), s.add(s.splat(1.0), e))
}
