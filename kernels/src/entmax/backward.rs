//! Backward passes (Jacobian-vector products) of the sparse normalizers.

use crate::simd::{exp, ln, SimdF32, MAX_LANES};
use crate::softmax::fill;

/// Computes the sparsemax (`SQUARE` false) or entmax-1.5 (`SQUARE` true)
/// Jacobian-vector product dx = g·dy − (Σ g·dy / Σ g)·g, where g = 1[p > 0]
/// for sparsemax and g = √p for entmax-1.5.
///
/// A row whose p has no positive entry (an all -inf or NaN forward row)
/// gives dx = 0, or NaN where p is NaN.
///
/// # Safety
///
/// `p[0 .. n]`, `dy[0 .. n]` readable, `dx[0 .. n]` writable. `dx` may equal
/// `dy` or `p` but must not otherwise overlap either.
#[inline(always)]
pub unsafe fn exact_backward_row<S: SimdF32, const SQUARE: bool>(
    s: S,
    p: *const f32,
    dy: *const f32,
    dx: *mut f32,
    n: usize,
) {
    let l = S::LANES;
    let zero = s.splat(0.0);
    #[inline(always)]
    fn weight<S: SimdF32, const SQUARE: bool>(s: S, v: S::V) -> S::V {
        let zero = s.splat(0.0);
        if SQUARE {
            // max() makes g = 0 for p ≤ 0; NaN p stays NaN through sqrt.
            s.select(s.is_nan(v), v, s.sqrt(s.max(v, zero)))
        } else {
            s.select(s.gt(v, zero), s.splat(1.0), s.select(s.is_nan(v), v, zero))
        }
    }
    let (mut gdy, mut gsum) = (zero, zero);
    let mut i = 0;
    // SAFETY: accesses stay inside the three rows; element i is read before
    // it is written, which makes dx == dy or dx == p safe.
    unsafe {
        while i < n {
            let (pv, dv) = if i + l <= n {
                (s.load(p.add(i)), s.load(dy.add(i)))
            } else {
                (s.load_tail(p.add(i), n - i, 0.0), s.load_tail(dy.add(i), n - i, 0.0))
            };
            let g = weight::<S, SQUARE>(s, pv);
            gdy = s.fma(g, dv, gdy);
            gsum = s.add(gsum, g);
            i += l;
        }
        let gsum = s.reduce_add(gsum);
        let mean = if gsum > 0.0 { s.reduce_add(gdy) / gsum } else { 0.0 };
        let vmean = s.splat(mean);
        let mut i = 0;
        while i + l <= n {
            let g = weight::<S, SQUARE>(s, s.load(p.add(i)));
            s.store(dx.add(i), s.mul(g, s.sub(s.load(dy.add(i)), vmean)));
            i += l;
        }
        if i < n {
            let g = weight::<S, SQUARE>(s, s.load_tail(p.add(i), n - i, 0.0));
            let d = s.load_tail(dy.add(i), n - i, 0.0);
            s.store_tail(dx.add(i), n - i, s.mul(g, s.sub(d, vmean)));
        }
    }
}

/// Computes ln p lane-wise for p > 0 that may be subnormal: the SIMD
/// [`ln`] takes normal inputs only, so subnormal p are scaled by 2^24
/// first. Lanes with p ≤ 0 give unspecified values.
#[inline(always)]
fn ln_positive<S: SimdF32>(s: S, p: S::V) -> S::V {
    const SCALE: f32 = 16_777_216.0; // 2^24
    let tiny = s.lt(p, s.splat(f32::MIN_POSITIVE));
    let scaled = s.select(tiny, s.mul(p, s.splat(SCALE)), p);
    let l = ln(s, scaled);
    s.select(tiny, s.sub(l, s.splat(24.0 * std::f32::consts::LN_2)), l)
}

/// φ(t) = (e^t − 1 − t)/t² lane-wise for |t| < 1, from the Taylor series
/// Σ t^j/(j + 2)! to j = 9, whose truncation error there is below
/// 1/11! < 3e-8 relative.
#[inline(always)]
fn phi_series<S: SimdF32>(s: S, t: S::V) -> S::V {
    // 1/(j + 2)! for j = 9 down to 0.
    const COEFFS: [f32; 10] = [
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
    ];
    let mut series = s.splat(COEFFS[0]);
    for &c in &COEFFS[1..] {
        series = s.fma(series, t, s.splat(c));
    }
    series
}

/// Loads `ptr[i .. i + LANES]`, or the tail `ptr[i .. n]` padded with 0.
///
/// # Safety
///
/// `ptr[i .. min(i + LANES, n)]` must be readable.
#[inline(always)]
unsafe fn load_or_zero<S: SimdF32>(s: S, ptr: *const f32, i: usize, n: usize) -> S::V {
    // SAFETY: forwarded from the caller.
    unsafe {
        if i + S::LANES <= n {
            s.load(ptr.add(i))
        } else {
            s.load_tail(ptr.add(i), n - i, 0.0)
        }
    }
}

/// Per-entry terms of the α-entmax backward pass for one vector of p, in
/// the scaled form of [`alpha_backward_row`]: (ℓ, ĝ, p·r̂), all 0 where
/// p ≤ 0. The terms read t = −a·ℓ ≥ 0 for 0 < p ≤ 1.
#[inline(always)]
fn alpha_terms<S: SimdF32>(s: S, p: S::V, a: S::V, b: S::V, shift: S::V, scale: S::V) -> (S::V, S::V, S::V) {
    let zero = s.splat(0.0);
    let inside = s.gt(p, zero);
    let l = ln_positive(s, p);
    // t = −a·ℓ, and ĝ = p^(1 − a)·e^(−M) = e^((1 − a)·ℓ − M).
    let t = s.mul(s.sub(zero, a), l);
    let g = exp(s, s.fma(b, l, shift));
    // p·r = p·ℓ²·φ(t), scaled by e^(−M). Where |t| ≥ 1 the same value is
    // (p·e^t − p·(1 + t))/a² = (ĝ − p·(1 + t)·e^(−M))/a², which never forms
    // e^t alone and so stays finite wherever ĝ does.
    let near = s.mul(s.mul(s.mul(p, s.mul(l, l)), phi_series(s, t)), scale);
    let a2 = s.mul(a, a);
    let far = s.div(s.sub(g, s.mul(s.mul(p, s.add(s.splat(1.0), t)), scale)), a2);
    let pr = s.select(s.lt(s.abs(t), s.splat(1.0)), near, far);
    (s.select(inside, l, zero), s.select(inside, g, zero), s.select(inside, pr, zero))
}

/// Computes the α-entmax Jacobian-vector product of one row into `dx` and
/// returns dL/dα = Σ dy_i·∂p_i/∂α.
///
/// With a = α − 1, ℓ = ln p, g = p^(1−a) and G = Σ g, the input gradient is
/// dx = g·dy − (Σ g·dy / G)·g. Differentiating p_i = [1 + a·(x_i − c)]^(1/a)
/// with the normalizer c held to Σ p = 1 gives
/// ∂p_i/∂α = p_i·(R − r_i + a·(r_i·S − ℓ_i·R)) / G, with S = Σ p·ℓ,
/// r = ℓ²·φ(−a·ℓ) and R = Σ p·r. This form has no 1/a² cancellation, so it
/// holds down to α = 1, where it becomes p_i·(Σ p·ℓ² − ℓ_i²)/2.
///
/// For α > 2, g and p·r grow without bound as p → 0 and overflow f32, so
/// the sums use ĝ = g·e^(−M) and p·r̂ = p·r·e^(−M) with M = max (1 − a)·ℓ
/// over the support: every ĝ ≤ 1, and both results are ratios in which
/// e^(−M) cancels. Only dx = g·(dy − mean) uses g itself. Where g exceeds
/// the f32 range, that dx is ill-conditioned (the rounding of mean is
/// multiplied by g, in f64 as well), and the kernel returns a finite value
/// or ±inf for it, never NaN.
///
/// Three passes over the row: the extreme p that sets M, the sums, and dx
/// with the α-gradient. A NaN in p gives an all-NaN dx and a NaN gradient;
/// a row without positive p gives dx = 0 and gradient 0.
///
/// # Safety
///
/// `p[0 .. n]` and `dy[0 .. n]` readable, `dx[0 .. n]` writable, `dx` equal
/// to `dy` or `p` or disjoint from both. `alpha` is finite and ≥ 1.
#[inline(always)]
pub unsafe fn alpha_backward_row<S: SimdF32>(s: S, p: *const f32, dy: *const f32, dx: *mut f32, n: usize, alpha: f32) -> f32 {
    debug_assert!(alpha >= 1.0 && alpha.is_finite());
    let l = S::LANES;
    let a = alpha - 1.0;
    let zero = s.splat(0.0);
    // Pass 1: NaN, and the smallest positive and the largest p.
    let (mut lo, mut hi, mut nan) = (s.splat(f32::INFINITY), zero, s.mask_none());
    let mut i = 0;
    while i < n {
        // SAFETY: i < n, so the load stays inside p[0 .. n].
        let v = unsafe { load_or_zero(s, p, i, n) };
        nan = s.mask_or(nan, s.is_nan(v));
        lo = s.min(lo, s.select(s.gt(v, zero), v, s.splat(f32::INFINITY)));
        hi = s.max(hi, v);
        i += l;
    }
    if s.mask_any(nan) {
        // SAFETY: dx[0 .. n] is writable.
        unsafe { fill(s, dx, n, f32::NAN) };
        return f32::NAN;
    }
    let (lo, hi) = (s.reduce_min(lo), s.reduce_max(hi));
    // hi ≥ 0 because its lanes start at 0, and NaN rows returned above.
    if hi <= 0.0 {
        // SAFETY: dx[0 .. n] is writable.
        unsafe { fill(s, dx, n, 0.0) };
        return 0.0;
    }
    // M = max (1 − a)·ℓ over the support, taken at the largest p for a < 1
    // and at the smallest positive p for a > 1. Computed with the same
    // vector ln as the terms, so the largest ĝ is exactly 1 or near it.
    let extreme = if a > 1.0 { lo } else { hi };
    let mut lanes = [0.0f32; MAX_LANES];
    s.to_array(ln_positive(s, s.splat(extreme)), &mut lanes);
    let m = (1.0 - a) * lanes[0];
    let (va, vb, vshift, vscale) = (s.splat(a), s.splat(1.0 - a), s.splat(-m), s.splat((-m).exp()));

    // Pass 2: S = Σ p·ℓ, R̂ = Σ p·r̂, Ĝ = Σ ĝ and Σ ĝ·dy.
    let (mut s_acc, mut r_acc, mut g_acc, mut gdy_acc) = (zero, zero, zero, zero);
    let mut i = 0;
    while i < n {
        // SAFETY: i < n, so the loads stay inside p[0 .. n] and dy[0 .. n].
        let (pv, dv) = unsafe { (load_or_zero(s, p, i, n), load_or_zero(s, dy, i, n)) };
        let (lv, gv, prv) = alpha_terms(s, pv, va, vb, vshift, vscale);
        s_acc = s.fma(pv, lv, s_acc);
        r_acc = s.add(r_acc, prv);
        g_acc = s.add(g_acc, gv);
        gdy_acc = s.fma(gv, dv, gdy_acc);
        i += l;
    }
    let (s_sum, r_sum, g_sum) = (s.reduce_add(s_acc), s.reduce_add(r_acc), s.reduce_add(g_acc));
    let mean = s.reduce_add(gdy_acc) / g_sum;

    // Pass 3: dx = g·(dy − mean) and Σ dy·p·(R̂ − r̂ +
    // a·(r̂·S − ℓ·R̂)) written as Σ dy·(p·R̂·(1 − a·ℓ) + p·r̂·(a·S − 1)).
    let (vmean, vs, vr) = (s.splat(mean), s.splat(a * s_sum - 1.0), s.splat(r_sum));
    let mut d_acc = zero;
    let mut i = 0;
    // SAFETY: loads and stores stay inside the three rows; entry i of p and
    // dy is read before dx[i] is written, which makes dx == p or dx == dy
    // safe.
    unsafe {
        while i < n {
            let (pv, dv) = (load_or_zero(s, p, i, n), load_or_zero(s, dy, i, n));
            let (lv, _, prv) = alpha_terms(s, pv, va, vb, vshift, vscale);
            let own = s.mul(s.mul(pv, vr), s.sub(s.splat(1.0), s.mul(va, lv)));
            d_acc = s.fma(dv, s.fma(prv, vs, own), d_acc);
            // g itself rather than ĝ·e^M, whose factor e^M can overflow
            // where g does not. Clamped to f32::MAX so that an entry with
            // dy = mean gives 0, not inf·0 = NaN.
            let g = s.min(exp(s, s.mul(vb, lv)), s.splat(f32::MAX));
            let g = s.select(s.gt(pv, zero), g, zero);
            let out = s.mul(g, s.sub(dv, vmean));
            if i + l <= n {
                s.store(dx.add(i), out);
            } else {
                s.store_tail(dx.add(i), n - i, out);
            }
            i += l;
        }
    }
    s.reduce_add(d_acc) / g_sum
}
