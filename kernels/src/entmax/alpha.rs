//! α-entmax for general α > 1: the bracketed Halley iteration
//! on the normalizer over the row's candidates.

use super::{row_max_or_policy, Rows, CONVERGED, GROUP_MAX_N, GROUP_ROWS, MAX_PASSES};
use crate::simd::{exp, ln, SimdF32, MAX_LANES};
use crate::softmax::fill;
use std::hint::select_unpredictable;

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
    let one = s.splat(1.0);
    let base = if NEAR_ONE { s.add(one, w) } else { w };
    let inv = s.div(one, base);
    // ln(1 + w) as in `ln_1p`, with its division by v = base replaced by
    // the product with inv, which the slope needs anyway.
    let log = if NEAR_ONE { s.fma(s.sub(w, s.sub(base, one)), inv, ln(s, base)) } else { ln(s, w) };
    // Lanes outside the support compute garbage that the select drops.
    let inside = s.gt(base, s.splat(f32::MIN_POSITIVE));
    let p = s.select(inside, exp(s, s.mul(vb, log)), zero);
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
/// in both forms dΣp/dθ = −Σ p/v and d²Σp/dθ² = (1 − a)·Σ p/v². Stores
/// each p to `p_out[0 .. n]` unless `p_out` is null.
///
/// # Safety
///
/// `x[0 .. n]` must be readable, and `p_out[0 .. n]` writable unless null.
#[inline(always)]
unsafe fn alpha_pass<S: SimdF32, const NEAR_ONE: bool>(
    s: S,
    x: *const f32,
    n: usize,
    max: f32,
    a: f32,
    theta: f32,
    p_out: *mut f32,
) -> (f32, f32, f32) {
    let l = S::LANES;
    let consts = (s.splat(max), s.splat(theta), s.splat(a), s.splat(1.0 / a));
    let zero = s.splat(0.0);
    // Lane sums run over blocks of BLOCK vectors and the block sums add up
    // in f64, so the error of Σp stays near EPS even for 1e5 terms.
    const BLOCK: usize = 64;
    let (mut p_total, mut d_total, mut e_total) = (0.0f64, 0.0f64, 0.0f64);
    let mut i = 0;
    // SAFETY: loads stay inside x[0 .. n] and stores inside p_out[0 .. n].
    unsafe {
        while i < n {
            let (mut p0, mut d0, mut e0) = (zero, zero, zero);
            let end = n.min(i + BLOCK * l);
            while i < end {
                let full = i + l <= end;
                let v = if full { s.load(x.add(i)) } else { s.load_tail(x.add(i), end - i, f32::NEG_INFINITY) };
                let (p, d, e) = alpha_eval::<S, NEAR_ONE>(s, v, consts);
                if !p_out.is_null() {
                    if full {
                        s.store(p_out.add(i), p);
                    } else {
                        s.store_tail(p_out.add(i), end - i, p);
                    }
                }
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
/// equal candidates, takes Halley steps on h = (Σp)^a − 1 while |Σp − 1| is
/// large and on Σp − 1 once it is small, all inside that
/// bracket, and falls back to bisection when a step leaves the bracket or
/// |Σp − 1| fails to halve. It stops when |Σp − 1| ≤ [`CONVERGED`] or the
/// bracket shrinks to 2 f32 ulp, and the output is divided by Σp of that
/// last pass. See [`AlphaSolve`] for the candidate filter.
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

/// Maximum row length whose α-entmax candidates the grouped body keeps in an
/// [`AlphaScratch`] on the stack.
pub const ALPHA_SCRATCH_N: usize = 256;

/// Stack storage of one row's candidates, their positions and their p at
/// the latest θ. With it, the output is written from the p of the last
/// pass, so no second evaluation of the row is needed, and in-place rows
/// are compacted too.
/// [`alpha_rows`] keeps [`GROUP_ROWS`] of them, 3200 bytes each, on the
/// stack.
///
/// `cand` and `index` have [`MAX_LANES`] entries of slack for the full
/// vector stores of [`SimdF32::compress`]. `index` stores positions as
/// f32, exact below 2^24.
#[derive(Clone, Copy)]
struct AlphaScratch {
    cand: [f32; ALPHA_SCRATCH_N + MAX_LANES],
    index: [f32; ALPHA_SCRATCH_N + MAX_LANES],
    p: [f32; ALPHA_SCRATCH_N],
}

impl AlphaScratch {
    const EMPTY: Self =
        AlphaScratch { cand: [0.0; ALPHA_SCRATCH_N + MAX_LANES], index: [0.0; ALPHA_SCRATCH_N + MAX_LANES], p: [0.0; ALPHA_SCRATCH_N] };

    /// Copies the entries of `x[0 .. n]` above `bound` and their positions
    /// to `cand` and `index`, in order, and returns their count and the sum
    /// of their x − max.
    ///
    /// # Safety
    ///
    /// `x[0 .. n]` readable, n ≤ [`ALPHA_SCRATCH_N`].
    #[inline(always)]
    unsafe fn compact<S: SimdF32>(&mut self, s: S, x: *const f32, n: usize, max: f32, bound: f32) -> (usize, f32) {
        debug_assert!(n <= ALPHA_SCRATCH_N);
        // 0, 1, 2, ... as f32, the lane offsets of the positions.
        const LANE_OFFSETS: [f32; MAX_LANES] = {
            let mut offsets = [0.0f32; MAX_LANES];
            let mut j = 0;
            while j < MAX_LANES {
                offsets[j] = j as f32;
                j += 1;
            }
            offsets
        };
        let l = S::LANES;
        let (vb, vm, zero) = (s.splat(bound), s.splat(max), s.splat(0.0));
        let (cand, index) = (self.cand.as_mut_ptr(), self.index.as_mut_ptr());
        let mut sum = zero;
        let (mut i, mut k) = (0, 0);
        // SAFETY: loads cover x[i .. i + l] with i + l ≤ n, or the tail
        // x[i .. n]; k ≤ i < n, so each compress writes inside the first
        // n + MAX_LANES entries.
        unsafe {
            let offsets = s.load(LANE_OFFSETS.as_ptr());
            while i < n {
                let v = if i + l <= n { s.load(x.add(i)) } else { s.load_tail(x.add(i), n - i, f32::NEG_INFINITY) };
                let above = s.gt(v, vb);
                if s.mask_any(above) {
                    sum = s.add(sum, s.select(above, s.sub(v, vm), zero));
                    let count = s.compress(cand.add(k), above, v);
                    s.compress(index.add(k), above, s.add(offsets, s.splat(i as f32)));
                    k += count;
                }
                i += l;
            }
        }
        (k, s.reduce_add(sum))
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
    /// Position of each candidate in the row and its p at `theta`, when
    /// the candidates sit in an [`AlphaScratch`]; null otherwise.
    index: *const f32,
    p: *mut f32,
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
    unsafe fn new<S: SimdF32, const NEAR_ONE: bool>(
        s: S,
        x: *const f32,
        y: *mut f32,
        n: usize,
        max: f32,
        alpha: f32,
        scratch: Option<&mut AlphaScratch>,
    ) -> Self {
        let a = alpha - 1.0;
        let a64 = a as f64;
        // Rounded down a little, so that no candidate is lost to rounding,
        // and strictly below max even where 1/a is below max's ulp.
        let bound = ((max as f64 - (1.0 + 1e-6) / a64) as f32).min(max.next_down());
        let (mut index, mut p) = (std::ptr::null(), std::ptr::null_mut());
        let (cand, k, z_sum) = if let Some(scratch) = scratch {
            debug_assert!(n <= ALPHA_SCRATCH_N);
            // SAFETY: forwarded from the caller, and n ≤ ALPHA_SCRATCH_N.
            let (k, z_sum) = unsafe { scratch.compact(s, x, n, max, bound) };
            (index, p) = (scratch.index.as_ptr(), scratch.p.as_mut_ptr());
            (scratch.cand.as_ptr(), k, z_sum)
        } else if std::ptr::eq(x, y) {
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
        // A start needs no f64: f32 keeps the libm call cheap.
        let start = z_sum / k as f32 - (-a * ln_k).exp_m1() / a + offset as f32;
        let theta = if start > lo && start < hi { start } else { lo };
        AlphaSolve { x, y, n, max, a, bound, cand, k, index, p, theta, lo, hi, last_f: f32::INFINITY, sum: f32::NAN }
    }

    /// Runs one pass at the current θ and moves θ. Returns whether the
    /// iteration has stopped, with `sum` then belonging to `theta`.
    ///
    /// # Safety
    ///
    /// `cand[0 .. k]` is readable, as [`AlphaSolve::new`] leaves it.
    #[inline(always)]
    unsafe fn step<S: SimdF32, const NEAR_ONE: bool>(&mut self, s: S) -> bool {
        // SAFETY: forwarded from the caller.
        let sums = unsafe { self.pass::<S, NEAR_ONE>(s) };
        self.update(s, sums)
    }

    /// Evaluates Σp, its slope and curvature at the current θ; see
    /// [`alpha_pass`].
    ///
    /// # Safety
    ///
    /// As for [`AlphaSolve::step`].
    #[inline(always)]
    unsafe fn pass<S: SimdF32, const NEAR_ONE: bool>(&self, s: S) -> (f32, f32, f32) {
        // SAFETY: forwarded from the caller.
        unsafe { alpha_pass::<S, NEAR_ONE>(s, self.cand, self.k, self.max, self.a, self.theta, self.p) }
    }

    /// Moves θ from the sums of a pass at the current θ. Returns whether
    /// the iteration has stopped, with `sum` then belonging to `theta`.
    #[inline(always)]
    fn update<S: SimdF32>(&mut self, s: S, sums: (f32, f32, f32)) -> bool {
        let a = self.a;
        let (sum, slope, curvature) = sums;
        self.sum = sum;
        let f = sum - 1.0;

        // Everything below is computed with selects rather than branches,
        // for the reason given at `threshold_update`. Once the row has
        // stopped, the updates of the bracket no longer matter.
        let converged = f.abs() <= CONVERGED;
        let (lo, hi) = (self.lo, self.hi);
        self.lo = select_unpredictable(f > 0.0, self.theta, lo);
        self.hi = select_unpredictable(f > 0.0, hi, self.theta);

        // Halley's step on h(θ) = (Σp)^a − 1 rather than on f: for a
        // support of equal entries h is exactly linear in θ, and for real
        // rows it is close to linear for every α, while f is strongly
        // curved as α → 1 (where h tends to ln Σp). With S = Σp, P = S^a,
        // S' = −slope and S'' = (1 − a)·curvature, the step
        // −2·h·h'/(2·h'² − h·h'') is
        // 2·(P − 1)·S·slope / (2·a·P·slope² − (P − 1)·((a − 1)·slope² + S·S'')).
        // P comes from the vector ln and exp: their few ulp suffice for a
        // step that the bracket guards. Once |f| < 0.01, Halley's step on f
        // itself is as good and needs no power.
        let mut lanes = [0.0f32; MAX_LANES];
        s.to_array(exp(s, s.mul(s.splat(a), ln(s, s.splat(sum)))), &mut lanes);
        let (power, slope2) = (lanes[0], slope * slope);
        let h = power - 1.0;
        let second = (a - 1.0) * slope2 + sum * (1.0 - a) * curvature;
        let halley_h = 2.0 * h * sum * slope / (2.0 * a * power * slope2 - h * second);
        let halley_f = 2.0 * f * slope / (2.0 * slope2 - f * (1.0 - a) * curvature);
        let stepped = self.theta + select_unpredictable(f.abs() < 0.01, halley_f, halley_h);

        let inside = (stepped > self.lo) & (stepped < self.hi);
        // A step near an entry at the support boundary can be tiny while f
        // is not (for α > 2 the slope there is unbounded), so only the
        // bracket width, not the step length, ends the iteration.
        let next = select_unpredictable(inside & (f.abs() <= 0.5 * self.last_f), stepped, 0.5 * (self.lo + self.hi));
        self.last_f = f.abs();
        let narrow = self.hi - self.lo <= 2.0 * f32::EPSILON * self.hi.abs().max(self.lo.abs());
        let stop = converged | narrow | (next == self.theta);
        self.theta = select_unpredictable(stop, self.theta, next);
        stop
    }

    /// Writes the output row from the last θ and Σp.
    ///
    /// # Safety
    ///
    /// The row contract of [`AlphaSolve::new`]; the candidates are no
    /// longer read once y is written.
    #[inline(always)]
    unsafe fn write<S: SimdF32, const NEAR_ONE: bool>(&self, s: S) {
        let r = 1.0 / self.sum;
        if self.index.is_null() {
            // SAFETY: forwarded from the caller.
            unsafe { alpha_write::<S, NEAR_ONE>(s, self.x, self.y, self.n, self.max, self.a, self.theta, self.bound, r) };
            return;
        }
        // The last pass stored p at θ for every candidate, the same values
        // that alpha_write would compute, and every other entry is 0.
        // SAFETY: y[0 .. n] is writable, the scratch contains k candidates,
        // and each index is below n.
        unsafe {
            fill(s, self.y, self.n, 0.0);
            for j in 0..self.k {
                let at = *self.index.add(j) as usize;
                debug_assert!(at < self.n);
                *self.y.add(at) = *self.p.add(j) * r;
            }
        }
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
        let mut solve = AlphaSolve::new::<S, NEAR_ONE>(s, x, y, n, max, alpha, None);
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
// NOTE: 64-element rows stay latency-bound here. Each row runs about three
// dependent passes of ln, exp and reductions, and eight rows in flight do
// not fill the core; evaluating the rows of a group across the lanes of
// one vector would remove the per-row chains.
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
    let mut scratch = [AlphaScratch::EMPTY; GROUP_ROWS];
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
        for ((g, solve), scratch) in solves.iter_mut().enumerate().take(count).zip(scratch.iter_mut()) {
            // SAFETY: row r + g is inside the block.
            unsafe {
                let (x, y) = (block.x_row(r + g), block.y_row(r + g));
                if let Some(m) = row_max_or_policy(s, x, y, n) {
                    let scratch = if n <= ALPHA_SCRATCH_N { Some(&mut *scratch) } else { None };
                    *solve = Some(AlphaSolve::new::<S, NEAR_ONE>(s, x, y, n, m, alpha, scratch));
                }
            }
        }
        let mut open = [false; GROUP_ROWS];
        for g in 0..GROUP_ROWS {
            open[g] = solves[g].is_some();
        }
        for _ in 0..MAX_PASSES {
            // All passes first and then all updates: each has a long
            // dependency chain, and only this order puts the chains of
            // several rows into the core's instruction window together.
            let mut sums = [(0.0f32, 0.0f32, 0.0f32); GROUP_ROWS];
            for g in 0..GROUP_ROWS {
                if let (true, Some(solve)) = (open[g], solves[g].as_ref()) {
                    // SAFETY: `new` left the row's candidates.
                    sums[g] = unsafe { solve.pass::<S, NEAR_ONE>(s) };
                }
            }
            for g in 0..GROUP_ROWS {
                if let (true, Some(solve)) = (open[g], solves[g].as_mut()) {
                    open[g] = !solve.update(s, sums[g]);
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
