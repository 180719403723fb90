//! α-entmax for general α > 1: the bracketed Newton and Halley iteration
//! on the normalizer over the row's candidates.

use super::{row_max_or_policy, Rows, CONVERGED, GROUP_MAX_N, GROUP_ROWS, MAX_PASSES};
use crate::simd::{exp, ln, ln_1p, SimdF32, MAX_LANES};

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
/// As for [`exact_row`](super::exact_row); `alpha` is finite and > 1.
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

/// State of the iteration of [`alpha_row`] on one row, in the
/// parameterization of [`alpha_pass`] selected by `NEAR_ONE`.
///
/// Only entries with x > max − 1/a can have p > 0 (both forms have
/// v ≤ 1 + a·(x − max) there), so unless the call is in place, those
/// candidates are first copied to the front of `y` and the iteration runs
/// over them alone. The final pass over the row writes p divided by the
/// candidates' Σp.
struct AlphaSolve {
    x: *const f32,
    y: *mut f32,
    n: usize,
    max: f32,
    a: f32,
    /// Entries below it have p = 0.
    bound: f32,
    cand: *const f32,
    k: usize,
    theta: f32,
    lo: f32,
    hi: f32,
    /// |Σp − 1| of the previous pass.
    last_f: f32,
    /// Σp at `theta`.
    sum: f32,
}

impl AlphaSolve {
    /// Filters the candidates and picks the starting θ.
    ///
    /// # Safety
    ///
    /// As for [`alpha_row`]; `max` is the finite row maximum.
    #[inline(always)]
    unsafe fn new<S: SimdF32, const NEAR_ONE: bool>(s: S, x: *const f32, y: *mut f32, n: usize, max: f32, alpha: f32) -> Self {
        let a = alpha - 1.0;
        let a64 = a as f64;
        // Rounded down a little, so that no candidate is lost to rounding,
        // and strictly below max even where 1/a is below max's ulp.
        let bound = ((max as f64 - (1.0 + 1e-6) / a64) as f32).min(max.next_down());
        let (cand, k, z_sum) = if std::ptr::eq(x, y) {
            (x, n, f32::NAN)
        } else {
            // SAFETY: x and y are disjoint rows of n elements.
            let (k, z_sum) = unsafe { compact_candidates(s, x, n, max, bound, y) };
            (y as *const f32, k, z_sum)
        };
        // Every candidate has p ≤ 1/k at c = (1 − k^(−a))/a, which is at
        // most both ln k and 1/a; the looser bound saves libm calls.
        let ln_k = (k.max(1) as f32).ln();
        let c_hi = (ln_k as f64).min(1.0 / a64);
        // In the threshold form the bracket is [0 − 1/a, c_hi − 1/a].
        let offset = if NEAR_ONE { 0.0 } else { -1.0 / a64 };
        let (lo, hi) = (offset as f32, (c_hi + offset) as f32);
        // Start where k candidates all equal to their mean z̄ would sum to
        // 1: c = z̄ + (1 − k^(−a))/a. For α ≤ 2, p is convex in z, so by
        // Jensen's inequality Σp ≥ 1 there and the start is a lower bound;
        // for α > 2 the bracket catches a start on the wrong side.
        let start = (z_sum / k as f32) as f64 - (-a64 * ln_k as f64).exp_m1() / a64 + offset;
        let theta = if start > lo as f64 && start < hi as f64 { start as f32 } else { lo };
        AlphaSolve { x, y, n, max, a, bound, cand, k, theta, lo, hi, last_f: f32::INFINITY, sum: f32::NAN }
    }

    /// Runs one pass at the current θ and moves θ. Returns whether the
    /// iteration has stopped, with `sum` then belonging to `theta`.
    ///
    /// # Safety
    ///
    /// `cand[0 .. k]` is readable, as [`AlphaSolve::new`] leaves it.
    #[inline(always)]
    unsafe fn step<S: SimdF32, const NEAR_ONE: bool>(&mut self, s: S) -> bool {
        let a = self.a;
        // SAFETY: forwarded from the caller.
        let (sum, slope, curvature) = unsafe { alpha_pass::<S, NEAR_ONE>(s, self.cand, self.k, self.max, a, self.theta) };
        self.sum = sum;
        let f = sum - 1.0;
        if f.abs() <= CONVERGED {
            return true;
        }
        if f > 0.0 {
            self.lo = self.theta;
        } else {
            self.hi = self.theta;
        }
        // Newton's step on h(θ) = (Σp)^a − 1 rather than on f: for a
        // support of equal entries h is exactly linear in θ, and for real
        // rows it is close to linear for every α, while f is strongly
        // curved as α → 1 (where h tends to ln Σp). Its step
        // h/h' = ((Σp)^a − 1)/(a·(Σp)^(a−1)·slope) is written as
        // −Σp·expm1(−a·ln Σp)/(a·slope). Once |f| is small, Halley's step
        // on f, which converges cubically, needs no libm call.
        let step = if f.abs() < 0.01 {
            2.0 * f * slope / (2.0 * slope * slope - f * (1.0 - a) * curvature)
        } else {
            let a64 = a as f64;
            let sum64 = sum as f64;
            (-sum64 * (-a64 * sum64.ln()).exp_m1() / (a64 * slope as f64)) as f32
        };
        let newton = self.theta + step;
        let inside = newton > self.lo && newton < self.hi;
        // A step near an entry at the support boundary can be tiny while f
        // is not (for α > 2 the slope there is unbounded), so only the
        // bracket width, not the step length, ends the iteration.
        let next = if inside && f.abs() <= 0.5 * self.last_f { newton } else { 0.5 * (self.lo + self.hi) };
        self.last_f = f.abs();
        if self.hi - self.lo <= 2.0 * f32::EPSILON * self.hi.abs().max(self.lo.abs()) || next == self.theta {
            return true;
        }
        self.theta = next;
        false
    }

    /// Writes the output row from the last θ and Σp.
    ///
    /// # Safety
    ///
    /// The row contract of [`AlphaSolve::new`]; the candidates are no
    /// longer read once y is written.
    #[inline(always)]
    unsafe fn write<S: SimdF32, const NEAR_ONE: bool>(&self, s: S) {
        // SAFETY: forwarded from the caller.
        unsafe { alpha_write::<S, NEAR_ONE>(s, self.x, self.y, self.n, self.max, self.a, self.theta, self.bound, 1.0 / self.sum) }
    }
}

/// Runs the iteration of [`alpha_row`] on one row; see [`AlphaSolve`].
///
/// # Safety
///
/// As for [`alpha_row`]; `max` is the finite row maximum.
#[inline(always)]
unsafe fn alpha_solve<S: SimdF32, const NEAR_ONE: bool>(s: S, x: *const f32, y: *mut f32, n: usize, max: f32, alpha: f32) {
    // SAFETY: forwarded from the caller; `new` leaves the candidates that
    // `step` reads.
    unsafe {
        let mut solve = AlphaSolve::new::<S, NEAR_ONE>(s, x, y, n, max, alpha);
        for _ in 0..MAX_PASSES {
            if solve.step::<S, NEAR_ONE>(s) {
                break;
            }
        }
        solve.write::<S, NEAR_ONE>(s);
    }
}

/// Computes α-entmax of every row of a block with one α; see
/// [`alpha_row`]. Rows of at most [`GROUP_MAX_N`] elements run
/// [`GROUP_ROWS`] at a time with their passes in lockstep, each row with
/// the same arithmetic as [`alpha_row`], so the results are identical.
///
/// # Safety
///
/// As for [`exact_rows`](super::exact_rows); `alpha` is finite and > 1.
#[inline(always)]
pub unsafe fn alpha_rows<S: SimdF32>(s: S, block: Rows, alpha: f32) {
    debug_assert!(alpha > 1.0 && alpha.is_finite());
    block.debug_check();
    // SAFETY: forwarded from the caller.
    unsafe {
        if alpha < 1.5 {
            alpha_blocks::<S, true>(s, block, alpha);
        } else {
            alpha_blocks::<S, false>(s, block, alpha);
        }
    }
}

/// [`alpha_rows`] in the parameterization selected by `NEAR_ONE`.
///
/// # Safety
///
/// As for [`alpha_rows`].
#[inline(always)]
unsafe fn alpha_blocks<S: SimdF32, const NEAR_ONE: bool>(s: S, block: Rows, alpha: f32) {
    let n = block.n;
    let mut r = 0;
    while r < block.rows {
        if n > GROUP_MAX_N {
            // SAFETY: row r is inside the block.
            unsafe {
                let (x, y) = (block.x_row(r), block.y_row(r));
                if let Some(m) = row_max_or_policy(s, x, y, n) {
                    alpha_solve::<S, NEAR_ONE>(s, x, y, n, m, alpha);
                }
            }
            r += 1;
            continue;
        }
        let count = GROUP_ROWS.min(block.rows - r);
        let mut solves: [Option<AlphaSolve>; GROUP_ROWS] = [const { None }; GROUP_ROWS];
        for (g, solve) in solves.iter_mut().enumerate().take(count) {
            // SAFETY: row r + g is inside the block.
            unsafe {
                let (x, y) = (block.x_row(r + g), block.y_row(r + g));
                if let Some(m) = row_max_or_policy(s, x, y, n) {
                    *solve = Some(AlphaSolve::new::<S, NEAR_ONE>(s, x, y, n, m, alpha));
                }
            }
        }
        let mut open = [false; GROUP_ROWS];
        for g in 0..GROUP_ROWS {
            open[g] = solves[g].is_some();
        }
        for _ in 0..MAX_PASSES {
            for g in 0..GROUP_ROWS {
                if open[g] {
                    if let Some(solve) = solves[g].as_mut() {
                        // SAFETY: `new` left the row's candidates.
                        open[g] = !unsafe { solve.step::<S, NEAR_ONE>(s) };
                    }
                }
            }
            if !open.iter().any(|&o| o) {
                break;
            }
        }
        for solve in solves.iter().flatten() {
            // SAFETY: the row's output is writable.
            unsafe { solve.write::<S, NEAR_ONE>(s) };
        }
        r += count;
    }
}
