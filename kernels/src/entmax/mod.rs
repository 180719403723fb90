//! Sparsemax, entmax-1.5 and α-entmax over one f32 row, and the backward
//! passes of sparsemax and entmax-1.5.
//!
//! α-entmax maps a row x to p_i = [(α − 1)·x_i − τ]_+^(1/(α − 1)) with the
//! threshold τ chosen so that Σ p = 1 (Peters, Niculae and Martins, "Sparse
//! Sequence-to-Sequence Models", ACL 2019). α = 2 is sparsemax (Martins and
//! Astudillo, ICML 2016) and α → 1 tends to softmax. The bodies work with
//! u = (α − 1)·(x − max x), so the row maximum has u = 0, τ lies in [−1, 0)
//! and only entries with u > −1 can have p > 0. No body sorts.
//!
//! - Sparsemax and entmax-1.5 run Newton's method on τ from τ = −1, which
//!   approaches the root from below and so only ever drops entries from the
//!   candidate support (for sparsemax it is Michelot's algorithm). Each pass
//!   also evaluates the closed-form τ of its candidate support and stops as
//!   soon as that τ is consistent with the support, so the result is exact.
//! - General α first copies the candidates (entries above max − 1/(α − 1))
//!   aside, then runs a bracketed Newton and Halley iteration on the
//!   normalizer over them, falling back to bisection when a step leaves the
//!   bracket or stalls, and divides the output by its sum.
//!
//! Non-finite policy shared by all forward bodies: a NaN or +inf anywhere in
//! the row makes the row NaN; -inf entries get 0; a row that is all -inf
//! gives all zeros; n = 1 gives [1]. Subtracting the row maximum first keeps
//! finite magnitudes exact.

use crate::simd::{exp, ln, ln_1p, SimdF32, MAX_LANES};
use crate::softmax::{fill, max_and_nan};

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;
pub mod scalar;

/// Maximum number of passes of the threshold iterations. Converging rows
/// stop long before it, so the cap only bounds the work on adversarial rows.
pub const MAX_PASSES: usize = 64;

/// Residual |Σp − 1| at which the α-entmax iteration accepts its
/// normalizer; the output is then divided by that Σp. It leaves about
/// 1e-6 relative error in each p and sits near the rounding noise of an
/// f32 sum over 1e5 terms; where that noise keeps |Σp − 1| above it, the
/// bisection fallback shrinks the bracket until the iteration stops.
pub const CONVERGED: f32 = 1e-6;

/// Sums of one threshold pass over the entries with d = u − τ > 0.
struct Support {
    count: f32,
    /// Σ d.
    sum: f32,
    /// Σ d², accumulated only for entmax-1.5.
    sum_sq: f32,
    /// min d over the support.
    min: f32,
}

/// Sums d and d² (when `SQUARE`) and counts the entries with d > 0, where
/// d = (x − max)·scale − τ: one pass of the exact threshold iterations.
///
/// # Safety
///
/// `x[0 .. n]` must be readable.
#[inline(always)]
unsafe fn support_pass<S: SimdF32, const SQUARE: bool>(
    s: S,
    x: *const f32,
    n: usize,
    max: f32,
    scale: f32,
    tau: f32,
) -> Support {
    let l = S::LANES;
    let (vm, vs, vt) = (s.splat(max), s.splat(scale), s.splat(-tau));
    let (zero, inf) = (s.splat(0.0), s.splat(f32::INFINITY));
    let (mut c0, mut c1, mut s0, mut s1) = (zero, zero, zero, zero);
    let (mut q0, mut q1, mut m0, mut m1) = (zero, zero, inf, inf);
    // A closure would not inherit the entry point's target features, so
    // the per-vector steps of this file are `#[inline(always)]` functions.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn step<S: SimdF32, const SQUARE: bool>(
        s: S,
        v: S::V,
        shift: (S::V, S::V, S::V),
        c: &mut S::V,
        sum: &mut S::V,
        sq: &mut S::V,
        mn: &mut S::V,
    ) {
        let (vm, vs, vt) = shift;
        let (zero, one, inf) = (s.splat(0.0), s.splat(1.0), s.splat(f32::INFINITY));
        let d = s.fma(s.sub(v, vm), vs, vt);
        let pos = s.gt(d, zero);
        let dp = s.select(pos, d, zero);
        *c = s.add(*c, s.select(pos, one, zero));
        *sum = s.add(*sum, dp);
        if SQUARE {
            *sq = s.fma(dp, dp, *sq);
        }
        *mn = s.min(*mn, s.select(pos, d, inf));
    }
    let shift = (vm, vs, vt);
    let mut i = 0;
    // SAFETY: loads cover x[i .. i + l] with i + l <= n, or the tail x[i .. n].
    unsafe {
        while i + 2 * l <= n {
            step::<S, SQUARE>(s, s.load(x.add(i)), shift, &mut c0, &mut s0, &mut q0, &mut m0);
            step::<S, SQUARE>(s, s.load(x.add(i + l)), shift, &mut c1, &mut s1, &mut q1, &mut m1);
            i += 2 * l;
        }
        while i < n {
            let v = if i + l <= n { s.load(x.add(i)) } else { s.load_tail(x.add(i), n - i, f32::NEG_INFINITY) };
            step::<S, SQUARE>(s, v, shift, &mut c0, &mut s0, &mut q0, &mut m0);
            i += l;
        }
    }
    Support {
        count: s.reduce_add(s.add(c0, c1)),
        sum: s.reduce_add(s.add(s0, s1)),
        sum_sq: s.reduce_add(s.add(q0, q1)),
        min: s.reduce_min(s.min(m0, m1)),
    }
}

/// Returns the exact threshold of sparsemax (`SQUARE` false) or entmax-1.5
/// (`SQUARE` true) in the units u = (x − max)·scale.
///
/// # Safety
///
/// `x[0 .. n]` must be readable and finite or -inf, with maximum `max`.
#[inline(always)]
unsafe fn exact_threshold<S: SimdF32, const SQUARE: bool>(s: S, x: *const f32, n: usize, max: f32, scale: f32) -> f32 {
    // The maximum has u = 0 and p ≤ 1, so τ ≥ −1 and the first pass
    // already filters the candidates to u > −1.
    let mut tau = -1.0f32;
    for _ in 0..MAX_PASSES {
        // SAFETY: forwarded from the caller.
        let sup = unsafe { support_pass::<S, SQUARE>(s, x, n, max, scale, tau) };
        // Closed-form shift δ of τ for the candidate support, and Newton's
        // step, which for sparsemax is the same.
        let (closed, newton) = if SQUARE {
            // Σ (d − δ)² = 1 is k·δ² − 2·δ·Σd + Σd² − 1 = 0; the smaller root,
            // written without cancellation.
            let disc = sup.sum * sup.sum - sup.count * (sup.sum_sq - 1.0);
            let closed = if disc >= 0.0 { (sup.sum_sq - 1.0) / (sup.sum + disc.sqrt()) } else { f32::NAN };
            (closed, (sup.sum_sq - 1.0) / (2.0 * sup.sum))
        } else {
            let closed = (sup.sum - 1.0) / sup.count;
            (closed, closed)
        };
        // The support is right when every candidate stays above the new τ;
        // candidates outside it are already below the current τ.
        if sup.min > closed {
            return tau + closed;
        }
        let next = tau + newton;
        // No representable progress: the remaining candidates are within
        // rounding of the threshold, where they contribute nothing.
        if !(next > tau) {
            return if closed.is_nan() { tau } else { tau + closed.max(0.0) };
        }
        tau = next;
    }
    tau
}

/// Writes `y = [(x − max)·scale − τ]_+` (squared when `SQUARE`).
///
/// # Safety
///
/// `x[0 .. n]` readable, `y[0 .. n]` writable, `y` equal to `x` or disjoint.
#[inline(always)]
unsafe fn write_threshold<S: SimdF32, const SQUARE: bool>(
    s: S,
    x: *const f32,
    y: *mut f32,
    n: usize,
    max: f32,
    scale: f32,
    tau: f32,
) {
    let l = S::LANES;
    let (vm, vs, vt) = (s.splat(max), s.splat(scale), s.splat(-tau));
    #[inline(always)]
    fn map<S: SimdF32, const SQUARE: bool>(s: S, v: S::V, vm: S::V, vs: S::V, vt: S::V) -> S::V {
        let d = s.max(s.fma(s.sub(v, vm), vs, vt), s.splat(0.0));
        if SQUARE {
            s.mul(d, d)
        } else {
            d
        }
    }
    let mut i = 0;
    // SAFETY: accesses stay inside x[0 .. n] and y[0 .. n]; element i is
    // read before it is written, which makes y == x safe.
    unsafe {
        while i + l <= n {
            s.store(y.add(i), map::<S, SQUARE>(s, s.load(x.add(i)), vm, vs, vt));
            i += l;
        }
        if i < n {
            let v = s.load_tail(x.add(i), n - i, f32::NEG_INFINITY);
            s.store_tail(y.add(i), n - i, map::<S, SQUARE>(s, v, vm, vs, vt));
        }
    }
}

/// Applies the row policy for NaN, +inf and all -inf rows. Returns the
/// maximum when the row needs the real computation.
///
/// # Safety
///
/// `x[0 .. n]` readable, `y[0 .. n]` writable.
#[inline(always)]
unsafe fn row_max_or_policy<S: SimdF32>(s: S, x: *const f32, y: *mut f32, n: usize) -> Option<f32> {
    // SAFETY: forwarded from the caller.
    unsafe {
        let (m, nan) = max_and_nan(s, x, n);
        if nan || m == f32::INFINITY {
            fill(s, y, n, f32::NAN);
            return None;
        }
        if m == f32::NEG_INFINITY {
            fill(s, y, n, 0.0);
            return None;
        }
        Some(m)
    }
}

/// Computes `y = sparsemax(x)` (`SQUARE` false) or `y = entmax15(x)`
/// (`SQUARE` true) over one row of `n` elements.
///
/// # Safety
///
/// `x[0 .. n]` must be readable and `y[0 .. n]` writable. `y` may equal `x`
/// (in place) but must not otherwise overlap it.
#[inline(always)]
pub unsafe fn exact_row<S: SimdF32, const SQUARE: bool>(s: S, x: *const f32, y: *mut f32, n: usize) {
    let scale = if SQUARE { 0.5 } else { 1.0 };
    // SAFETY: forwarded from the caller.
    unsafe {
        let Some(m) = row_max_or_policy(s, x, y, n) else { return };
        let tau = exact_threshold::<S, SQUARE>(s, x, n, m, scale);
        write_threshold::<S, SQUARE>(s, x, y, n, m, scale, tau);
    }
}

/// Returns p, p/v and p/v² of one vector at the constants (max, θ, a, 1/a);
/// see [`alpha_pass`].
#[inline(always)]
fn alpha_eval<S: SimdF32, const NEAR_ONE: bool>(
    s: S,
    v: S::V,
    consts: (S::V, S::V, S::V, S::V),
) -> (S::V, S::V, S::V) {
    let (vm, vtheta, va, vb) = consts;
    let zero = s.splat(0.0);
    // x − max first, so that the result depends on x − max only.
    let w = s.mul(va, s.sub(s.sub(v, vm), vtheta));
    let (base, log) = if NEAR_ONE { (s.add(s.splat(1.0), w), ln_1p(s, w)) } else { (w, ln(s, w)) };
    // Lanes outside the support compute garbage that the select drops.
    let inside = s.gt(base, s.splat(f32::MIN_POSITIVE));
    let p = s.select(inside, exp(s, s.mul(vb, log)), zero);
    let inv = s.div(s.splat(1.0), base);
    let slope = s.select(inside, s.mul(p, inv), zero);
    (p, slope, s.mul(slope, inv))
}

/// One pass of the α-entmax iteration at normalizer `theta`, with
/// z = x − max and a = α − 1:
/// - `NEAR_ONE`: v = 1 + q with q = a·(z − θ), and ln v = ln(1 + q) in its
///   accurate form; θ = c, the shift in units of x;
/// - otherwise: v = a·(z − θ), where z − θ is exact near the boundary
///   (Sterbenz), so small v keep full relative precision; θ = t, the
///   threshold in units of x.
///
/// p = v^(1/a) for v > 0 and 0 otherwise. Returns (Σ p, Σ p/v, Σ p/v²):
/// in both forms dΣp/dθ = −Σ p/v and d²Σp/dθ² = (1 − a)·Σ p/v².
///
/// # Safety
///
/// `x[0 .. n]` must be readable.
#[inline(always)]
unsafe fn alpha_pass<S: SimdF32, const NEAR_ONE: bool>(
    s: S,
    x: *const f32,
    n: usize,
    max: f32,
    a: f32,
    theta: f32,
) -> (f32, f32, f32) {
    let l = S::LANES;
    let consts = (s.splat(max), s.splat(theta), s.splat(a), s.splat(1.0 / a));
    let zero = s.splat(0.0);
    // Lane sums run over blocks of BLOCK vectors and the block sums add up
    // in f64, so the error of Σp stays near EPS even for 1e5 terms.
    const BLOCK: usize = 64;
    let (mut p_total, mut d_total, mut e_total) = (0.0f64, 0.0f64, 0.0f64);
    let mut i = 0;
    // SAFETY: loads stay inside x[0 .. n].
    unsafe {
        while i < n {
            let (mut p0, mut d0, mut e0) = (zero, zero, zero);
            let end = n.min(i + BLOCK * l);
            while i < end {
                let v = if i + l <= end { s.load(x.add(i)) } else { s.load_tail(x.add(i), end - i, f32::NEG_INFINITY) };
                let (p, d, e) = alpha_eval::<S, NEAR_ONE>(s, v, consts);
                p0 = s.add(p0, p);
                d0 = s.add(d0, d);
                e0 = s.add(e0, e);
                i += l;
            }
            i = end;
            p_total += s.reduce_add(p0) as f64;
            d_total += s.reduce_add(d0) as f64;
            e_total += s.reduce_add(e0) as f64;
        }
    }
    (p_total as f32, d_total as f32, e_total as f32)
}

/// Computes `y = α-entmax(x)` over one row of `n` elements for α > 1.
///
/// With a = α − 1 and z = x − max, p_i = [1 + a·(z_i − c)]_+^(1/a) for a
/// normalizer c, which is also [a·(z_i − t)]_+^(1/a) with the threshold
/// t = c − 1/a. For α < 1.5 the iteration works on c, which stays near
/// ln n as α → 1 and keeps the result accurate there, where p tends to
/// softmax(x). For α ≥ 1.5 it works on t, because 1 + a·(z − c) would lose
/// the relative precision of small v that p = v^(1/a) amplifies when
/// 1/a < 2. See [`alpha_pass`].
///
/// c ≥ 0 because p_max ≤ 1, and c ≤ (1 − k^(−a))/a for k candidates
/// because there every p_i ≤ 1/k. The iteration starts from the c of k
/// equal candidates, takes Newton steps on h = (Σp)^a − 1 while |Σp − 1| is
/// large and Halley steps on Σp − 1 once it is small, all inside that
/// bracket, and falls back to bisection when a step leaves the bracket or
/// |Σp − 1| fails to halve. It stops when |Σp − 1| ≤ [`CONVERGED`] or the
/// bracket shrinks to 2 f32 ulp, and the output is divided by Σp of that
/// last pass. See [`alpha_solve`] for the candidate filter.
///
/// # Safety
///
/// As for [`exact_row`]; `alpha` is finite and > 1.
#[inline(always)]
pub unsafe fn alpha_row<S: SimdF32>(s: S, x: *const f32, y: *mut f32, n: usize, alpha: f32) {
    debug_assert!(alpha > 1.0 && alpha.is_finite());
    // SAFETY: forwarded from the caller.
    unsafe {
        let Some(m) = row_max_or_policy(s, x, y, n) else { return };
        if alpha < 1.5 {
            alpha_solve::<S, true>(s, x, y, n, m, alpha);
        } else {
            alpha_solve::<S, false>(s, x, y, n, m, alpha);
        }
    }
}

/// Copies the entries of `x[0 .. n]` above `bound` to `out`, in order, and
/// returns their count and the sum of their x − max.
///
/// # Safety
///
/// `x[0 .. n]` readable, `out[0 .. n]` writable and disjoint from `x`.
#[inline(always)]
unsafe fn compact_candidates<S: SimdF32>(
    s: S,
    x: *const f32,
    n: usize,
    max: f32,
    bound: f32,
    out: *mut f32,
) -> (usize, f32) {
    let l = S::LANES;
    let (vb, vm, zero) = (s.splat(bound), s.splat(max), s.splat(0.0));
    let mut sum = zero;
    let mut lanes = [0.0f32; MAX_LANES];
    let (mut i, mut k) = (0, 0);
    // SAFETY: loads cover x[i .. i + l] with i + l <= n, or the tail x[i .. n];
    // at most n values are written to out.
    unsafe {
        while i < n {
            let v = if i + l <= n { s.load(x.add(i)) } else { s.load_tail(x.add(i), n - i, f32::NEG_INFINITY) };
            let above = s.gt(v, vb);
            if s.mask_any(above) {
                sum = s.add(sum, s.select(above, s.sub(v, vm), zero));
                s.to_array(v, &mut lanes);
                // Branch-free: every lane is written at out[k] and only
                // candidates advance k. k ≤ i + lane < n keeps it in bounds.
                for &value in &lanes[..l.min(n - i)] {
                    *out.add(k) = value;
                    k += usize::from(value > bound);
                }
            }
            i += l;
        }
    }
    (k, s.reduce_add(sum))
}

/// Writes p·r for every entry of `x[0 .. n]` at normalizer `theta` (see
/// [`alpha_pass`]), with 0 for vectors that have no entry above `bound`.
///
/// # Safety
///
/// `x[0 .. n]` readable, `y[0 .. n]` writable, equal to `x` or disjoint.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn alpha_write<S: SimdF32, const NEAR_ONE: bool>(
    s: S,
    x: *const f32,
    y: *mut f32,
    n: usize,
    max: f32,
    a: f32,
    theta: f32,
    bound: f32,
    r: f32,
) {
    let l = S::LANES;
    let consts = (s.splat(max), s.splat(theta), s.splat(a), s.splat(1.0 / a));
    let (vb, vr, zero) = (s.splat(bound), s.splat(r), s.splat(0.0));
    let mut i = 0;
    // SAFETY: accesses stay inside x[0 .. n] and y[0 .. n]; element i is
    // read before it is written.
    unsafe {
        while i < n {
            let full = i + l <= n;
            let v = if full { s.load(x.add(i)) } else { s.load_tail(x.add(i), n - i, f32::NEG_INFINITY) };
            let out = if s.mask_any(s.gt(v, vb)) { s.mul(alpha_eval::<S, NEAR_ONE>(s, v, consts).0, vr) } else { zero };
            if full {
                s.store(y.add(i), out);
            } else {
                s.store_tail(y.add(i), n - i, out);
            }
            i += l;
        }
    }
}

/// The iteration of [`alpha_row`] in the parameterization of
/// [`alpha_pass`] selected by `NEAR_ONE`.
///
/// Only entries with x > max − 1/a can have p > 0 (both forms have
/// v ≤ 1 + a·(x − max) there), so unless the call is in place, those
/// candidates are first copied to the front of `y` and the iteration runs
/// over them alone. The final pass over the row writes p divided by the
/// candidates' Σp.
///
/// # Safety
///
/// As for [`alpha_row`]; `max` is the finite row maximum.
#[inline(always)]
unsafe fn alpha_solve<S: SimdF32, const NEAR_ONE: bool>(s: S, x: *const f32, y: *mut f32, n: usize, max: f32, alpha: f32) {
    let a = alpha - 1.0;
    let a64 = a as f64;
    // Rounded down a little, so that no candidate is lost to rounding, and
    // strictly below max even where 1/a is below max's ulp.
    let bound = ((max as f64 - (1.0 + 1e-6) / a64) as f32).min(max.next_down());
    let (cand, k, z_sum) = if std::ptr::eq(x, y) {
        (x, n, f32::NAN)
    } else {
        // SAFETY: x and y are disjoint rows of n elements.
        let (k, z_sum) = unsafe { compact_candidates(s, x, n, max, bound, y) };
        (y as *const f32, k, z_sum)
    };
    // Every candidate has p ≤ 1/k at c = (1 − k^(−a))/a, which is at most
    // both ln k and 1/a; the looser bound saves libm calls.
    let ln_k = (k.max(1) as f32).ln();
    let c_hi = (ln_k as f64).min(1.0 / a64);
    // In the threshold form the bracket is [0 − 1/a, c_hi − 1/a].
    let offset = if NEAR_ONE { 0.0 } else { -1.0 / a64 };
    let (mut lo, mut hi) = (offset as f32, (c_hi + offset) as f32);
    // Start where k candidates all equal to their mean z̄ would sum to 1:
    // c = z̄ + (1 − k^(−a))/a. For α ≤ 2, p is convex in z, so by Jensen's
    // inequality Σp ≥ 1 there and the start is a lower bound; for α > 2
    // the bracket catches a start on the wrong side.
    let start = (z_sum / k as f32) as f64 - (-a64 * ln_k as f64).exp_m1() / a64 + offset;
    let mut theta = if start > lo as f64 && start < hi as f64 { start as f32 } else { lo };
    let mut last_f = f32::INFINITY;
    let mut sum = f32::NAN;
    for _ in 0..MAX_PASSES {
        // SAFETY: cand[0 .. k] is readable.
        let (pass_sum, slope, curvature) = unsafe { alpha_pass::<S, NEAR_ONE>(s, cand, k, max, a, theta) };
        sum = pass_sum;
        let f = sum - 1.0;
        if f.abs() <= CONVERGED {
            break;
        }
        if f > 0.0 {
            lo = theta;
        } else {
            hi = theta;
        }
        // Newton's step on h(θ) = (Σp)^a − 1 rather than on f: for a
        // support of equal entries h is exactly linear in θ, and for real
        // rows it is close to linear for every α, while f is strongly
        // curved as α → 1 (where h tends to ln Σp). Once |f| is small,
        // Halley's step on f, which converges cubically, needs no libm call.
        let step = if f.abs() < 0.01 {
            2.0 * f * slope / (2.0 * slope * slope - f * (1.0 - a) * curvature)
        } else {
            let ln_sum = (sum as f64).ln();
            ((a64 * ln_sum).exp_m1() / (a64 * slope as f64 * ((a64 - 1.0) * ln_sum).exp())) as f32
        };
        let newton = theta + step;
        let inside = newton > lo && newton < hi;
        // A step near an entry at the support boundary can be tiny while f
        // is not (for α > 2 the slope there is unbounded), so only the
        // bracket width, not the step length, ends the iteration.
        let next = if inside && f.abs() <= 0.5 * last_f { newton } else { 0.5 * (lo + hi) };
        last_f = f.abs();
        if hi - lo <= 2.0 * f32::EPSILON * hi.abs().max(lo.abs()) || next == theta {
            break;
        }
        theta = next;
    }
    // SAFETY: the caller's row contract covers the write; `sum` belongs to
    // `theta`, and cand is no longer read once y is written.
    unsafe { alpha_write::<S, NEAR_ONE>(s, x, y, n, max, a, theta, bound, 1.0 / sum) }
}

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

/// Expands to the per-instruction-set entry points of this family.
macro_rules! entmax_kernels {
    ($token:ty, [$($feature:literal),*], $sparsemax:ident, $entmax15:ident, $alpha:ident,
     $sparsemax_bwd:ident, $entmax15_bwd:ident) => {
        /// Row sparsemax; see [`exact_row`](crate::entmax::exact_row).
        ///
        /// # Safety
        ///
        /// As for `exact_row`, and the CPU runs this instruction set.
        $(#[target_feature(enable = $feature)])*
        pub unsafe fn $sparsemax(x: *const f32, y: *mut f32, n: usize) {
            // SAFETY: the caller guarantees the ISA and the row contract.
            unsafe { crate::entmax::exact_row::<_, false>(<$token>::new_unchecked(), x, y, n) }
        }

        /// Row entmax-1.5; see [`exact_row`](crate::entmax::exact_row).
        ///
        /// # Safety
        ///
        /// As for `exact_row`, and the CPU runs this instruction set.
        $(#[target_feature(enable = $feature)])*
        pub unsafe fn $entmax15(x: *const f32, y: *mut f32, n: usize) {
            // SAFETY: the caller guarantees the ISA and the row contract.
            unsafe { crate::entmax::exact_row::<_, true>(<$token>::new_unchecked(), x, y, n) }
        }

        /// Row α-entmax; see [`alpha_row`](crate::entmax::alpha_row).
        ///
        /// # Safety
        ///
        /// As for `alpha_row`, and the CPU runs this instruction set.
        $(#[target_feature(enable = $feature)])*
        pub unsafe fn $alpha(x: *const f32, y: *mut f32, n: usize, alpha: f32) {
            // SAFETY: the caller guarantees the ISA and the row contract.
            unsafe { crate::entmax::alpha_row(<$token>::new_unchecked(), x, y, n, alpha) }
        }

        /// Row sparsemax backward; see
        /// [`exact_backward_row`](crate::entmax::exact_backward_row).
        ///
        /// # Safety
        ///
        /// As for `exact_backward_row`, and the CPU runs this instruction set.
        $(#[target_feature(enable = $feature)])*
        pub unsafe fn $sparsemax_bwd(p: *const f32, dy: *const f32, dx: *mut f32, n: usize) {
            // SAFETY: the caller guarantees the ISA and the row contract.
            unsafe { crate::entmax::exact_backward_row::<_, false>(<$token>::new_unchecked(), p, dy, dx, n) }
        }

        /// Row entmax-1.5 backward; see
        /// [`exact_backward_row`](crate::entmax::exact_backward_row).
        ///
        /// # Safety
        ///
        /// As for `exact_backward_row`, and the CPU runs this instruction set.
        $(#[target_feature(enable = $feature)])*
        pub unsafe fn $entmax15_bwd(p: *const f32, dy: *const f32, dx: *mut f32, n: usize) {
            // SAFETY: the caller guarantees the ISA and the row contract.
            unsafe { crate::entmax::exact_backward_row::<_, true>(<$token>::new_unchecked(), p, dy, dx, n) }
        }
    };
}
use entmax_kernels;
