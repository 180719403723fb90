//! α-entmax for general α > 1: the bracketed Halley iteration
//! on the normalizer over the row's candidates.

use super::{row_max_or_policy, Rows, CONVERGED, GROUP_MAX_N, MAX_PASSES};
use crate::simd::{exp, exp_nonpositive, ln, SimdF32, MAX_LANES};
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
    // Every θ of the bracket has v ≤ 1, so ln v / a ≤ 0 up to rounding,
    // which the min removes.
    let p = s.select(inside, exp_nonpositive(s, s.min(s.mul(vb, log), zero)), zero);
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
    unsafe fn new<S: SimdF32, const NEAR_ONE: bool>(
        s: S,
        x: *const f32,
        y: *mut f32,
        n: usize,
        max: f32,
        alpha: f32,
    ) -> Self {
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
        // A start needs no f64: f32 keeps the libm call cheap.
        let start = z_sum / k as f32 - (-a * ln_k).exp_m1() / a + offset as f32;
        let theta = if start > lo && start < hi { start } else { lo };
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
        unsafe { alpha_pass::<S, NEAR_ONE>(s, self.cand, self.k, self.max, self.a, self.theta) }
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
        // SAFETY: forwarded from the caller.
        unsafe { alpha_write::<S, NEAR_ONE>(s, self.x, self.y, self.n, self.max, self.a, self.theta, self.bound, r) };
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
/// [`alpha_row`]. Rows longer than [`GROUP_MAX_N`] run one at a time.
/// Shorter rows run in groups of `S::LANES`, one row per lane (see
/// [`alpha_lanes`]), and within each window of [`WINDOW_GROUPS`] groups
/// the rows are sorted by their candidate count first.
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
    if n > GROUP_MAX_N {
        while r < block.rows {
            // SAFETY: row r is inside the block.
            unsafe {
                let (x, y) = (block.x_row(r), block.y_row(r));
                if let Some(m) = row_max_or_policy(s, x, y, n) {
                    alpha_solve::<S, NEAR_ONE>(s, x, y, n, m, alpha);
                }
            }
            r += 1;
        }
        return;
    }
    let mut lanes = LaneScratch::EMPTY;
    let a64 = (alpha - 1.0) as f64;
    let window = WINDOW_GROUPS * S::LANES;
    while r < block.rows {
        let end = block.rows.min(r + window);
        // Rows that need the iteration, as (candidate count, row, max).
        let mut live = [(0usize, 0usize, 0.0f32); WINDOW_GROUPS * MAX_LANES];
        let mut count = 0;
        for row in r..end {
            let (x, y) = (block.x_row(row), block.y_row(row));
            // SAFETY: the row is inside the block.
            unsafe {
                if let Some(max) = row_max_or_policy(s, x, y, n) {
                    live[count] = (count_above(s, x, n, candidate_bound(max, a64)), row, max);
                    count += 1;
                }
            }
        }
        // A group costs its largest candidate count per pass, so rows of
        // similar counts go together.
        live[..count].sort_unstable_by_key(|&(k, row, _)| (k, row));
        for group in live[..count].chunks(S::LANES) {
            // SAFETY: the rows are inside the block and pass the policy,
            // and n ≤ GROUP_MAX_N.
            unsafe { alpha_lanes::<S, NEAR_ONE>(s, block, group, alpha, &mut lanes) };
        }
        r = end;
    }
}

/// Number of groups of `LANES` rows whose candidate counts [`alpha_blocks`]
/// sorts together.
const WINDOW_GROUPS: usize = 4;

/// Returns the lower bound of the candidates of a row with maximum `max`:
/// only entries with x > max − 1/a can have p > 0, because both forms of
/// [`alpha_pass`] have v ≤ 1 + a·(x − max) there. It is rounded down a
/// little, so that no candidate is lost to rounding, and strictly below
/// max even where 1/a is below max's ulp.
#[inline(always)]
fn candidate_bound(max: f32, a64: f64) -> f32 {
    ((max as f64 - (1.0 + 1e-6) / a64) as f32).min(max.next_down())
}

/// Returns the number of entries of `x[0 .. n]` above `bound`.
///
/// # Safety
///
/// `x[0 .. n]` readable.
#[inline(always)]
unsafe fn count_above<S: SimdF32>(s: S, x: *const f32, n: usize, bound: f32) -> usize {
    let l = S::LANES;
    let (vb, one, zero) = (s.splat(bound), s.splat(1.0), s.splat(0.0));
    let mut total = zero;
    let mut i = 0;
    // SAFETY: loads cover x[i .. i + l] with i + l ≤ n, or the tail x[i .. n].
    unsafe {
        while i < n {
            let v = if i + l <= n { s.load(x.add(i)) } else { s.load_tail(x.add(i), n - i, f32::NEG_INFINITY) };
            total = s.add(total, s.select(s.gt(v, vb), one, zero));
            i += l;
        }
    }
    s.reduce_add(total) as usize
}

/// Stack storage of the candidates of up to [`MAX_LANES`] rows of at most
/// [`GROUP_MAX_N`] elements in structure-of-arrays layout: entry
/// `c·LANES + g` is candidate c of lane g, so that one vector contains
/// candidate c of every row of the group. 36 KiB.
struct LaneScratch {
    /// x − max of each candidate, -inf past the lane's candidate count.
    z: [f32; GROUP_MAX_N * MAX_LANES],
    /// p of each candidate at the latest θ.
    p: [f32; GROUP_MAX_N * MAX_LANES],
    /// Position of each candidate in its row. It is below
    /// [`GROUP_MAX_N`] = 256, so it fits in a u8.
    index: [u8; GROUP_MAX_N * MAX_LANES],
    /// x − max and position (as f32, exact) of one row's candidates, with
    /// [`MAX_LANES`] entries of slack for the full vector stores of
    /// [`SimdF32::compress`].
    row_z: [f32; GROUP_MAX_N + MAX_LANES],
    row_index: [f32; GROUP_MAX_N + MAX_LANES],
}

// Candidate positions are stored as u8.
const _: () = assert!(GROUP_MAX_N <= 256);

impl LaneScratch {
    const EMPTY: Self = LaneScratch {
        z: [0.0; GROUP_MAX_N * MAX_LANES],
        p: [0.0; GROUP_MAX_N * MAX_LANES],
        index: [0; GROUP_MAX_N * MAX_LANES],
        row_z: [0.0; GROUP_MAX_N + MAX_LANES],
        row_index: [0.0; GROUP_MAX_N + MAX_LANES],
    };

    /// Copies x − max of the entries of `x[0 .. n]` above `bound`, and
    /// their positions, to `row_z` and `row_index`, in order. Returns
    /// their count and the sum of their x − max.
    ///
    /// # Safety
    ///
    /// `x[0 .. n]` readable, n ≤ [`GROUP_MAX_N`].
    #[inline(always)]
    unsafe fn compact<S: SimdF32>(&mut self, s: S, x: *const f32, n: usize, max: f32, bound: f32) -> (usize, f32) {
        debug_assert!(n <= GROUP_MAX_N);
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
        let (row_z, row_index) = (self.row_z.as_mut_ptr(), self.row_index.as_mut_ptr());
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
                let z = s.sub(v, vm);
                sum = s.add(sum, s.select(above, z, zero));
                let count = s.compress(row_z.add(k), above, z);
                s.compress(row_index.add(k), above, s.add(offsets, s.splat(i as f32)));
                k += count;
                i += l;
            }
        }
        (k, s.reduce_add(sum))
    }
}

/// Returns the starting state of [`alpha_lanes`]: the bracket and start of
/// [`AlphaSolve::new`] per lane, from each lane's candidate count `k` and
/// the sum of their x − max, with ln and exp in vector form.
#[inline(always)]
fn lanes_start<S: SimdF32, const NEAR_ONE: bool>(
    s: S,
    k: &[usize; MAX_LANES],
    z_sum: &[f32; MAX_LANES],
    done: &[f32; MAX_LANES],
    a: f32,
) -> LaneState<S> {
    let mut k_f32 = [1.0f32; MAX_LANES];
    for (kf, &kg) in k_f32.iter_mut().zip(k) {
        *kf = kg.max(1) as f32;
    }
    // SAFETY: the arrays have MAX_LANES ≥ LANES entries.
    let (vk, vz, vdone) = unsafe { (s.load(k_f32.as_ptr()), s.load(z_sum.as_ptr()), s.load(done.as_ptr())) };
    let (one, va, inv_a) = (s.splat(1.0), s.splat(a), s.splat(1.0 / a));
    // In the threshold form the bracket is [0 − 1/a, c_hi − 1/a]. The
    // same f32 1/a on both sides makes c_hi = 1/a give exactly 0.
    let offset = s.splat(if NEAR_ONE { 0.0 } else { -(1.0 / a) });
    let ln_k = ln(s, vk);
    // c ≤ (1 − k^(−a))/a ≤ min(ln k, 1/a), as in AlphaSolve::new. The
    // vector ln is off by a few ulp, so ln k is raised by 2e-6 relative,
    // more than that error and the rounding of the sum below; ln 1 = 0
    // stays exact.
    let c_hi = s.min(s.mul(ln_k, s.splat(1.0 + 2e-6)), inv_a);
    let (lo, hi) = (offset, s.add(c_hi, offset));
    // The start of AlphaSolve::new: c = z̄ − expm1(−a·ln k)/a, with expm1
    // from its Taylor series where exp(t) − 1 would cancel.
    let t = s.mul(s.sub(s.splat(0.0), va), ln_k);
    let series = s.mul(t, s.fma(t, s.fma(t, s.splat(1.0 / 6.0), s.splat(0.5)), one));
    let em1 = s.select(s.lt(s.abs(t), s.splat(1e-3)), series, s.sub(exp(s, t), one));
    let start = s.add(s.sub(s.div(vz, vk), s.mul(em1, inv_a)), offset);
    let theta = s.select(s.gt(start, lo), s.select(s.lt(start, hi), start, lo), lo);
    LaneState { theta, lo, hi, last_f: s.splat(f32::INFINITY), done: vdone }
}

/// Computes α-entmax of the rows of a block listed in `rows`, at most
/// `S::LANES` of them as (candidate count, row, row maximum), with
/// `rows[g]` in lane g of every vector.
///
/// The candidates of each row (as in [`AlphaSolve`]) are copied into
/// `lanes` with their x − max, and the iteration of [`alpha_row`] runs on
/// all lanes at once: same start, bracket, Halley and bisection steps and
/// stopping rule, with selects in place of branches. A lane that has
/// stopped keeps its θ while the others go on, so its sums do not change.
/// A pass is then `K` vector evaluations, for the largest candidate count
/// K of the group, with no horizontal reduction, where the per-row
/// iteration waits on the reductions of each pass.
///
/// The output is p at the last θ divided by Σp, which is summed again with
/// compensation, so that the written row sums to 1 within the rounding of
/// its products.
///
/// # Safety
///
/// As for [`alpha_rows`], for these rows. Each row passed
/// [`row_max_or_policy`] with the given maximum, and `block.n` ≤
/// [`GROUP_MAX_N`].
#[inline(always)]
unsafe fn alpha_lanes<S: SimdF32, const NEAR_ONE: bool>(
    s: S,
    block: Rows,
    rows: &[(usize, usize, f32)],
    alpha: f32,
    lanes: &mut LaneScratch,
) {
    let (l, n, count) = (S::LANES, block.n, rows.len());
    debug_assert!(count <= l && n <= GROUP_MAX_N);
    let a = alpha - 1.0;
    let a64 = a as f64;
    let mut k = [0usize; MAX_LANES];
    let mut z_sum = [0.0f32; MAX_LANES];
    // 1.0 where the lane needs no more passes: the lanes without a row.
    let mut done = [1.0f32; MAX_LANES];
    for (g, &(_, row, max)) in rows.iter().enumerate() {
        // SAFETY: the row is inside the block, and n ≤ GROUP_MAX_N.
        let (kg, sum) = unsafe { lanes.compact(s, block.x_row(row), n, max, candidate_bound(max, a64)) };
        // The row maximum is always a candidate, so kg ≥ 1.
        debug_assert!(kg >= 1);
        // SAFETY: c < kg ≤ n ≤ GROUP_MAX_N and g < l ≤ MAX_LANES bound
        // every access.
        unsafe {
            for c in 0..kg {
                *lanes.z.get_unchecked_mut(c * l + g) = *lanes.row_z.get_unchecked(c);
                *lanes.index.get_unchecked_mut(c * l + g) = *lanes.row_index.get_unchecked(c) as u8;
            }
        }
        (k[g], z_sum[g], done[g]) = (kg, sum, 0.0);
    }
    if count == 0 {
        return;
    }
    let width = k[..count].iter().copied().max().unwrap_or(0);
    // Every lane reads -inf, which gives p = 0, past its candidate count.
    for (g, &kg) in k.iter().enumerate().take(l) {
        for c in kg..width {
            // SAFETY: c < width ≤ GROUP_MAX_N and g < l ≤ MAX_LANES.
            unsafe { *lanes.z.get_unchecked_mut(c * l + g) = f32::NEG_INFINITY };
        }
    }

    let (z, p) = (lanes.z.as_ptr(), lanes.p.as_mut_ptr());
    // SAFETY: the arrays have MAX_LANES ≥ l entries, and the scratch
    // has width·l ≤ GROUP_MAX_N·MAX_LANES entries.
    let sum = unsafe {
        let mut state = lanes_start::<S, NEAR_ONE>(s, &k, &z_sum, &done, a);
        for _ in 0..MAX_PASSES {
            let sums = lanes_pass::<S, NEAR_ONE>(s, z, p, width, a, state.theta);
            if !lanes_update(s, &mut state, sums, a) {
                break;
            }
        }
        lanes_sum(s, p, width)
    };

    let mut sums = [0.0f32; MAX_LANES];
    s.to_array(sum, &mut sums);
    for (g, &(_, row, _)) in rows.iter().enumerate() {
        let y = block.y_row(row);
        let r = 1.0 / sums[g];
        // SAFETY: the output row is writable, each index is below n, and
        // c < k[g] ≤ GROUP_MAX_N with g < l bounds the scratch accesses.
        // Every input row of the group was read above, so an in-place
        // row may be overwritten now.
        unsafe {
            fill(s, y, n, 0.0);
            for c in 0..k[g] {
                let at = *lanes.index.get_unchecked(c * l + g) as usize;
                debug_assert!(at < n);
                *y.add(at) = *lanes.p.get_unchecked(c * l + g) * r;
            }
        }
    }
}

/// Per-lane state of [`alpha_lanes`], the fields of [`AlphaSolve`] as
/// vectors.
struct LaneState<S: SimdF32> {
    theta: S::V,
    lo: S::V,
    hi: S::V,
    /// |Σp − 1| of the previous pass.
    last_f: S::V,
    /// 1 where the lane has stopped, else 0.
    done: S::V,
}

/// One pass of [`alpha_pass`] on every lane: evaluates candidates
/// `0 .. width` of `z` at the per-lane `theta`, stores each p to `p`, and
/// returns the per-lane (Σ p, Σ p/v, Σ p/v²).
///
/// # Safety
///
/// `z[0 .. width·LANES]` readable, `p[0 .. width·LANES]` writable.
#[inline(always)]
unsafe fn lanes_pass<S: SimdF32, const NEAR_ONE: bool>(
    s: S,
    z: *const f32,
    p: *mut f32,
    width: usize,
    a: f32,
    theta: S::V,
) -> (S::V, S::V, S::V) {
    let l = S::LANES;
    let zero = s.splat(0.0);
    // z already is x − max, so the max of alpha_eval is 0.
    let consts = (zero, theta, s.splat(a), s.splat(1.0 / a));
    // Two sets of sums halve the dependency chains of the additions.
    let (mut p0, mut d0, mut e0, mut p1, mut d1, mut e1) = (zero, zero, zero, zero, zero, zero);
    let mut c = 0;
    // SAFETY: c + 1 < width or c < width bounds every access.
    unsafe {
        while c + 2 <= width {
            let (pa, da, ea) = alpha_eval::<S, NEAR_ONE>(s, s.load(z.add(c * l)), consts);
            let (pb, db, eb) = alpha_eval::<S, NEAR_ONE>(s, s.load(z.add((c + 1) * l)), consts);
            s.store(p.add(c * l), pa);
            s.store(p.add((c + 1) * l), pb);
            (p0, d0, e0) = (s.add(p0, pa), s.add(d0, da), s.add(e0, ea));
            (p1, d1, e1) = (s.add(p1, pb), s.add(d1, db), s.add(e1, eb));
            c += 2;
        }
        if c < width {
            let (pa, da, ea) = alpha_eval::<S, NEAR_ONE>(s, s.load(z.add(c * l)), consts);
            s.store(p.add(c * l), pa);
            (p0, d0, e0) = (s.add(p0, pa), s.add(d0, da), s.add(e0, ea));
        }
    }
    (s.add(p0, p1), s.add(d0, d1), s.add(e0, e1))
}

/// [`AlphaSolve::update`] on every lane that has not stopped. Returns
/// whether any lane goes on.
#[inline(always)]
fn lanes_update<S: SimdF32>(s: S, state: &mut LaneState<S>, sums: (S::V, S::V, S::V), a: f32) -> bool {
    let (sum, slope, curvature) = sums;
    let (one, two, va) = (s.splat(1.0), s.splat(2.0), s.splat(a));
    let theta = state.theta;
    let f = s.sub(sum, one);
    let f_abs = s.abs(f);

    let above = s.gt(f, s.splat(0.0));
    let (lo, hi) = (s.select(above, theta, state.lo), s.select(above, state.hi, theta));

    // The Halley steps of AlphaSolve::update, on h = (Σp)^a − 1 while
    // |f| ≥ 0.01 and on f after.
    let power = exp(s, s.mul(va, ln(s, sum)));
    let slope2 = s.mul(slope, slope);
    let h = s.sub(power, one);
    let one_minus_a = s.splat(1.0 - a);
    let second = s.add(s.mul(s.splat(a - 1.0), slope2), s.mul(s.mul(sum, one_minus_a), curvature));
    let halley_h = s.div(
        s.mul(s.mul(s.mul(two, h), sum), slope),
        s.sub(s.mul(s.mul(s.mul(two, va), power), slope2), s.mul(h, second)),
    );
    let halley_f = s.div(s.mul(s.mul(two, f), slope), s.sub(s.mul(two, slope2), s.mul(s.mul(f, one_minus_a), curvature)));
    let stepped = s.add(theta, s.select(s.lt(f_abs, s.splat(0.01)), halley_f, halley_h));

    // Bisect unless the step lands strictly inside the bracket and |f| at
    // least halved; the conditions are nested selects because masks have
    // no `and`.
    let mid = s.mul(s.splat(0.5), s.add(lo, hi));
    let halved = s.select(s.gt(f_abs, s.mul(s.splat(0.5), state.last_f)), mid, stepped);
    let next = s.select(s.gt(stepped, lo), s.select(s.lt(stepped, hi), halved, mid), mid);

    let eps = s.splat(2.0 * f32::EPSILON);
    let wide = s.gt(s.sub(hi, lo), s.mul(eps, s.max(s.abs(hi), s.abs(lo))));
    let moved = s.mask_or(s.gt(next, theta), s.lt(next, theta));
    let unconverged = s.gt(f_abs, s.splat(CONVERGED));
    // stop = converged | narrow | next == θ, as 1.0 for true.
    let stop = s.select(unconverged, s.select(wide, s.select(moved, s.splat(0.0), one), one), one);
    let done = s.max(state.done, stop);
    let stopped = s.gt(done, s.splat(0.5));

    state.lo = lo;
    state.hi = hi;
    state.last_f = f_abs;
    state.theta = s.select(stopped, theta, next);
    state.done = done;
    s.mask_any(s.lt(done, s.splat(0.5)))
}

/// Returns the per-lane Σp of `p[0 .. width·LANES]`, with Kahan's
/// compensated summation.
///
/// # Safety
///
/// `p[0 .. width·LANES]` readable.
#[inline(always)]
unsafe fn lanes_sum<S: SimdF32>(s: S, p: *const f32, width: usize) -> S::V {
    let l = S::LANES;
    let (mut sum, mut carry) = (s.splat(0.0), s.splat(0.0));
    for c in 0..width {
        // SAFETY: c < width.
        let v = s.sub(unsafe { s.load(p.add(c * l)) }, carry);
        let t = s.add(sum, v);
        carry = s.sub(s.sub(t, sum), v);
        sum = t;
    }
    sum
}
