//! Sparsemax, entmax-1.5 and α-entmax over f32 rows, and their backward
//! passes.
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
//!   aside, then runs a bracketed Halley iteration on the normalizer over
//!   them, falling back to bisection when a step leaves the bracket or
//!   stalls, and divides the output by its sum.
//! - Rows whose candidates (u > −1) fit in one vector can skip the
//!   iteration: every set of the largest candidates gets its closed-form τ
//!   at once, one candidate per lane, and the largest consistent τ is
//!   exact ([`one_vector_threshold`]).
//! - An iteration that ends with entries within rounding of τ, as ties at
//!   the support boundary leave it, finishes with [`settle_boundary`],
//!   which gives such ties exactly 0.
//! - Rows of up to [`GROUP_MAX_N`] elements run several at a time,
//!   because one short row alone leaves the core waiting on the reductions
//!   of each pass. Sparsemax and entmax-1.5 interleave the passes of
//!   [`GROUP_ROWS`] rows, and general α puts one row in each lane of a
//!   vector.
//!
//! Non-finite policy shared by all forward bodies: a NaN or +inf anywhere in
//! the row makes the row NaN; -inf entries get 0; a row that is all -inf
//! gives all zeros; n = 1 gives [1]. Subtracting the row maximum first keeps
//! finite magnitudes exact.

use crate::simd::{SimdF32, MAX_LANES};
use crate::softmax::{fill, max_and_nan};
use std::hint::select_unpredictable;

mod alpha;
mod backward;

pub use alpha::{alpha_row, alpha_rows};
pub use backward::{alpha_backward_row, exact_backward_row};

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

/// Returns the next τ of the exact threshold iteration of sparsemax
/// (`SQUARE` false) or entmax-1.5 (`SQUARE` true), whether it is final,
/// and whether it ended in a stall (see [`settle_boundary`]), from the
/// sums of a support pass at `tau`. It computes the same
/// values as one pass of [`exact_threshold`].
///
/// The result is computed with selects, not branches. A branch on it
/// would resolve only at the end of the pass's reductions, and each
/// misprediction would discard the passes of the other rows of a group
/// that the core runs speculatively behind it. Single long rows keep the
/// branches of [`exact_threshold`], which measured faster there.
#[inline(always)]
fn threshold_update<const SQUARE: bool>(sup: &Support, tau: f32) -> (f32, bool, bool) {
    // Closed-form shift δ of τ for the candidate support, and Newton's
    // step, which for sparsemax is the same.
    let closed = closed_shift::<SQUARE>(sup);
    let newton = if SQUARE { (sup.sum_sq - 1.0) / (2.0 * sup.sum) } else { closed };
    // The support is right when every candidate stays above the new τ;
    // candidates outside it are already below the current τ.
    let exact = sup.min > closed;
    let next = tau + newton;
    // No representable progress: the remaining candidates are within
    // rounding of the threshold, where they contribute nothing.
    let stalled = next.partial_cmp(&tau) != Some(std::cmp::Ordering::Greater);
    let at_stall = select_unpredictable(closed.is_nan(), tau, tau + closed.max(0.0));
    let result = select_unpredictable(exact, tau + closed, select_unpredictable(stalled, at_stall, next));
    (result, exact | stalled, settle_needed(exact, stalled, sup.min - closed))
}

/// Returns whether a threshold iteration that ended with `exact` or
/// `stalled` needs [`settle_boundary`]: after a stall, or after an exact
/// step whose smallest support entry ends within rounding of the
/// threshold (`gap` = its d minus the step). Rounding can let ties at the
/// boundary pass the exactness test with a τ a few ulp below them. The
/// test's units are those of u, whose scale is 1 near the threshold.
#[inline(always)]
fn settle_needed(exact: bool, stalled: bool, gap: f32) -> bool {
    if exact {
        gap <= 8.0 * f32::EPSILON
    } else {
        stalled
    }
}

/// Returns the smallest u = (x − max)·scale of `x[0 .. n]` above `tau`,
/// or 0 (the maximum's u) when there is none.
///
/// # Safety
///
/// `x[0 .. n]` must be readable and finite or -inf, with maximum `max`.
#[inline(always)]
unsafe fn min_above<S: SimdF32>(s: S, x: *const f32, n: usize, max: f32, scale: f32, tau: f32) -> f32 {
    let l = S::LANES;
    let (vm, vs, vt, zero) = (s.splat(max), s.splat(scale), s.splat(tau), s.splat(0.0));
    let mut low = zero;
    let mut i = 0;
    // SAFETY: loads cover x[i .. i + l] with i + l ≤ n, or the tail x[i .. n].
    unsafe {
        while i < n {
            let v = if i + l <= n { s.load(x.add(i)) } else { s.load_tail(x.add(i), n - i, f32::NEG_INFINITY) };
            let u = s.mul(s.sub(v, vm), vs);
            low = s.min(low, s.select(s.gt(u, vt), u, zero));
            i += l;
        }
    }
    s.reduce_min(low)
}

/// Finishes a threshold iteration that stalled at `tau`: the remaining
/// candidates sit within rounding of the threshold, which is where ties at
/// the support boundary leave them, and the iteration can only creep up
/// on them. The smallest candidate u_b is tried as the boundary: the
/// closed form over the entries strictly above u_b, in differences from
/// u_b, is exact for ties (u − u_b is exact, as the scale is 1 or ½).
/// When it puts τ at or above u_b and keeps its support above τ, the ties
/// at u_b get exactly 0. Otherwise `tau` is returned. Only stalled rows pay
/// these two passes.
///
/// # Safety
///
/// `x[0 .. n]` must be readable and finite or -inf, with maximum `max`.
#[cold]
#[inline(never)]
unsafe fn settle_boundary<S: SimdF32, const SQUARE: bool>(s: S, x: *const f32, n: usize, max: f32, scale: f32, tau: f32) -> f32 {
    // SAFETY: forwarded from the caller.
    let boundary = unsafe { min_above(s, x, n, max, scale, tau) };
    if boundary >= 0.0 {
        return tau;
    }
    // SAFETY: forwarded from the caller.
    let sup = unsafe { support_pass::<S, SQUARE>(s, x, n, max, scale, boundary) };
    let closed = closed_shift::<SQUARE>(&sup);
    if closed >= 0.0 && sup.min > closed {
        boundary + closed
    } else {
        tau
    }
}

/// Closed-form shift δ of τ for the candidate support of a pass: the
/// smaller root of k·δ² − 2·δ·Σd + Σd² − 1 = 0 for entmax-1.5, written
/// without cancellation (NaN for a negative discriminant), and
/// (Σd − 1)/k for sparsemax.
#[inline(always)]
fn closed_shift<const SQUARE: bool>(sup: &Support) -> f32 {
    if SQUARE {
        let disc = sup.sum * sup.sum - sup.count * (sup.sum_sq - 1.0);
        (sup.sum_sq - 1.0) / (sup.sum + disc.sqrt())
    } else {
        (sup.sum - 1.0) / sup.count
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
        let closed = closed_shift::<SQUARE>(&sup);
        let newton = if SQUARE { (sup.sum_sq - 1.0) / (2.0 * sup.sum) } else { closed };
        // The support is right when every candidate stays above the new τ;
        // candidates outside it are already below the current τ.
        if sup.min > closed {
            if settle_needed(true, false, sup.min - closed) {
                // SAFETY: forwarded from the caller.
                return unsafe { settle_boundary::<S, SQUARE>(s, x, n, max, scale, tau + closed) };
            }
            return tau + closed;
        }
        let next = tau + newton;
        // No representable progress: the remaining candidates are within
        // rounding of the threshold, where they contribute nothing.
        if next.partial_cmp(&tau) != Some(core::cmp::Ordering::Greater) {
            let at_stall = if closed.is_nan() { tau } else { tau + closed.max(0.0) };
            // SAFETY: forwarded from the caller.
            return unsafe { settle_boundary::<S, SQUARE>(s, x, n, max, scale, at_stall) };
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

/// Copies d = (x − max)·scale + 1 of the candidates of a row (d > 0, that
/// is u > −1 in the units of [`exact_threshold`]) to `buf`, followed by
/// -inf up to `LANES` entries. Returns their count, or `None` as soon as
/// it exceeds `LANES`.
///
/// # Safety
///
/// `x[0 .. n]` must be readable.
#[inline(always)]
unsafe fn one_vector_candidates<S: SimdF32>(
    s: S,
    x: *const f32,
    n: usize,
    max: f32,
    scale: f32,
    buf: &mut [f32; 2 * MAX_LANES],
) -> Option<usize> {
    let l = S::LANES;
    let (vm, vs, one, zero) = (s.splat(max), s.splat(scale), s.splat(1.0), s.splat(0.0));
    let (mut k, mut i) = (0, 0);
    // SAFETY: loads cover x[i .. i + l] with i + l ≤ n, or the tail
    // x[i .. n]; k ≤ l before each store, which writes buf[k .. k + l]
    // inside its 2·MAX_LANES ≥ 2·l entries.
    unsafe {
        while i < n {
            let v = if i + l <= n { s.load(x.add(i)) } else { s.load_tail(x.add(i), n - i, f32::NEG_INFINITY) };
            let d = s.fma(s.sub(v, vm), vs, one);
            k += s.compress(buf.as_mut_ptr().add(k), s.gt(d, zero), d);
            if k > l {
                return None;
            }
            i += l;
        }
        s.store(buf.as_mut_ptr().add(k), s.splat(f32::NEG_INFINITY));
    }
    Some(k)
}

/// Returns the exact threshold of sparsemax (`SQUARE` false) or
/// entmax-1.5 (`SQUARE` true), in the units u of [`exact_threshold`], of a
/// row whose candidates [`one_vector_candidates`] left in `buf`, with
/// `width` at least their count.
///
/// The support is a set of the largest d, and the threshold t = τ + 1 of
/// the set of all d ≥ d_j solves Σ (d − t) = 1 or Σ (d − t)² = 1 in
/// closed form. Candidate j sits in lane j, so every such set is summed at
/// once, one broadcast candidate at a time, with no sort and no
/// iteration. A set is consistent when its smallest d stays above its t.
/// Every consistent set has t ≤ t*: one larger than the support would put
/// an entry at or below t* above t*, and a smaller one is a subset of the
/// support. The support itself is consistent, so t* is the largest t of
/// the consistent sets. Ties enter a set together, so they are handled
/// exactly. The -inf padding joins no set and is never consistent.
#[inline(always)]
fn one_vector_threshold<S: SimdF32, const SQUARE: bool>(s: S, buf: &[f32; 2 * MAX_LANES], width: usize) -> f32 {
    let (one, zero) = (s.splat(1.0), s.splat(0.0));
    // SAFETY: buf has 2·MAX_LANES ≥ LANES entries.
    let d = unsafe { s.load(buf.as_ptr()) };

    let (mut count, mut sum, mut sum_sq) = (zero, zero, zero);
    for &candidate in &buf[..width] {
        // The candidate joins the set of lane j when it is ≥ d_j; the sums
        // run over e = d − d_j ≥ 0.
        let dc = s.splat(candidate);
        let out = s.lt(dc, d);
        let e = s.select(out, zero, s.sub(dc, d));
        count = s.add(count, s.select(out, zero, one));
        sum = s.add(sum, e);
        if SQUARE {
            sum_sq = s.fma(e, e, sum_sq);
        }
    }
    // The set's threshold is t = d_j + σ. A consistent set has σ < 0, so
    // the formulas below are sums of positive terms there, with no
    // cancellation: the smaller root of k·σ² − 2·σ·Σe + Σe² − 1 = 0 for
    // entmax-1.5, and (Σe − 1)/k for sparsemax. The -inf lanes give NaN.
    let shift = if SQUARE {
        let excess = s.sub(sum_sq, one);
        s.div(excess, s.add(sum, s.sqrt(s.sub(s.mul(sum, sum), s.mul(count, excess)))))
    } else {
        s.div(s.sub(sum, one), count)
    };
    let t = s.add(d, shift);
    // Consistent: σ < 0, that is d_j above t.
    let consistent = s.lt(shift, zero);
    s.reduce_max(s.select(consistent, t, s.splat(f32::NEG_INFINITY))) - 1.0
}

/// Number of rows that the short-row bodies process together. Each row's
/// threshold passes form one long chain of dependent reductions; running
/// several rows' passes side by side lets the out-of-order core overlap
/// the chains.
pub const GROUP_ROWS: usize = 8;

/// Maximum row length that runs in groups of rows. Longer rows have
/// enough independent vectors in each pass to keep the core busy alone.
pub const GROUP_MAX_N: usize = 256;

/// A block of `rows` rows of `n` f32 elements: row r of the input starts
/// at `x + r·x_stride` and row r of the output at `y + r·y_stride`.
#[derive(Clone, Copy, Debug)]
pub struct Rows {
    pub x: *const f32,
    pub x_stride: usize,
    pub y: *mut f32,
    pub y_stride: usize,
    pub rows: usize,
    pub n: usize,
}

impl Rows {
    /// Returns the input row `r`; it is only dereferenced under the
    /// contract of the function that receives the block.
    #[inline(always)]
    fn x_row(&self, r: usize) -> *const f32 {
        self.x.wrapping_add(r * self.x_stride)
    }

    /// Returns the output row `r`.
    #[inline(always)]
    fn y_row(&self, r: usize) -> *mut f32 {
        self.y.wrapping_add(r * self.y_stride)
    }

    /// Checks the layout rules of a block in debug builds: strides of at
    /// least `n` where there is more than one row.
    #[inline(always)]
    fn debug_check(&self) {
        debug_assert!(self.rows <= 1 || (self.x_stride >= self.n && self.y_stride >= self.n));
    }
}

/// An entry point of [`exact_row`] for one instruction set.
pub type RowFn = unsafe fn(*const f32, *mut f32, usize);

/// Computes sparsemax (`SQUARE` false) or entmax-1.5 (`SQUARE` true) of
/// every row of a block; see [`exact_row`]. Rows longer than
/// [`GROUP_MAX_N`] go to `long_row`, the [`exact_row`] of the same
/// instruction set as its own function: inlined here, the same body ran
/// about 30% slower on 4096 × 1024 sparsemax (AVX-512, AMD EPYC). Rows of at most
/// [`GROUP_MAX_N`] elements run [`GROUP_ROWS`] at a time, each row with
/// the same arithmetic as [`exact_row`], so the results are identical.
///
/// # Safety
///
/// Every input row is readable and every output row writable. Output row
/// r equals input row r (in place) or overlaps no input row and no other
/// output row.
#[inline(always)]
pub unsafe fn exact_rows<S: SimdF32, const SQUARE: bool>(s: S, block: Rows, long_row: RowFn) {
    block.debug_check();
    // Candidate copies of one group, reused by every group of the block.
    let mut bufs = [[0.0f32; 2 * MAX_LANES]; GROUP_ROWS];
    let mut one_vector = true;
    let mut r = 0;
    while r < block.rows {
        if block.n > GROUP_MAX_N {
            // SAFETY: row r is inside the block.
            unsafe { long_row(block.x_row(r), block.y_row(r), block.n) };
            r += 1;
        } else {
            let count = GROUP_ROWS.min(block.rows - r);
            // SAFETY: rows r .. r + count are inside the block.
            unsafe { exact_group::<S, SQUARE>(s, block, r, count, &mut bufs, &mut one_vector) };
            r += count;
        }
    }
}

/// Computes rows `first .. first + count` of a block, `count` ≤
/// [`GROUP_ROWS`], with their threshold passes in lockstep.
///
/// # Safety
///
/// As for [`exact_rows`], for these rows.
#[inline(always)]
unsafe fn exact_group<S: SimdF32, const SQUARE: bool>(
    s: S,
    block: Rows,
    first: usize,
    count: usize,
    bufs: &mut [[f32; 2 * MAX_LANES]; GROUP_ROWS],
    one_vector: &mut bool,
) {
    debug_assert!(count <= GROUP_ROWS);
    let scale = if SQUARE { 0.5 } else { 1.0 };
    let n = block.n;
    let mut max = [0.0f32; GROUP_ROWS];
    let mut tau = [-1.0f32; GROUP_ROWS];
    // `live`: the row needs the threshold; `open`: its τ is not final yet.
    let mut live = [false; GROUP_ROWS];
    for g in 0..count {
        // SAFETY: row first + g is inside the block.
        if let Some(m) = unsafe { row_max_or_policy(s, block.x_row(first + g), block.y_row(first + g), n) } {
            max[g] = m;
            live[g] = true;
        }
    }
    let mut open = live;
    // Rows whose candidates fit in one vector can take the closed form of
    // one_vector_threshold instead of the passes below. It measured
    // faster when the rows average 3 or more candidates, and slower for
    // fewer, where the first pass is usually final, or when some rows have
    // too many, whose failed copy is wasted. So each group takes it when
    // the previous group's candidate counts call for it; both paths see
    // the counts. The rows' copies go first and their solves after, so
    // that the out-of-order core overlaps the rows.
    // Candidate counts of the live rows: their sum, and whether all fit.
    let (mut candidates, mut all_fit) = (0.0f32, true);
    if *one_vector {
        let mut widths = [0usize; GROUP_ROWS];
        for g in 0..count {
            if live[g] {
                // SAFETY: as above.
                match unsafe { one_vector_candidates(s, block.x_row(first + g), n, max[g], scale, &mut bufs[g]) } {
                    Some(k) => {
                        widths[g] = k;
                        candidates += k as f32;
                        open[g] = false;
                    }
                    None => all_fit = false,
                }
            }
        }
        for g in 0..count {
            if live[g] && !open[g] {
                tau[g] = one_vector_threshold::<S, SQUARE>(s, &bufs[g], widths[g]);
            }
        }
    }
    let mut first_pass = !*one_vector;
    // Bit g: row g needs settle_boundary.
    let mut stalled = 0u32;
    for _ in 0..MAX_PASSES {
        // All passes first and then all updates, so that the dependency
        // chains of several rows sit in the core's instruction window
        // together.
        let mut sums = [const { Support { count: 0.0, sum: 0.0, sum_sq: 0.0, min: 0.0 } }; GROUP_ROWS];
        for g in 0..GROUP_ROWS {
            if open[g] {
                // SAFETY: row first + g is inside the block and finite or
                // -inf, which row_max_or_policy checked.
                sums[g] = unsafe { support_pass::<S, SQUARE>(s, block.x_row(first + g), n, max[g], scale, tau[g]) };
            }
        }
        if first_pass {
            // The first pass runs at τ = −1, so its count is the number of
            // candidates.
            let mut max_count = 0.0f32;
            for sup in &sums[..count] {
                candidates += sup.count;
                max_count = max_count.max(sup.count);
            }
            all_fit = max_count <= S::LANES as f32;
            first_pass = false;
        }
        for g in 0..GROUP_ROWS {
            if open[g] {
                let (next, last, stall) = threshold_update::<SQUARE>(&sums[g], tau[g]);
                tau[g] = next;
                open[g] = !last;
                stalled |= u32::from(stall) << g;
            }
        }
        if !open.iter().any(|&o| o) {
            break;
        }
    }
    while stalled != 0 {
        let g = stalled.trailing_zeros() as usize;
        stalled &= stalled - 1;
        // SAFETY: as above.
        tau[g] = unsafe { settle_boundary::<S, SQUARE>(s, block.x_row(first + g), n, max[g], scale, tau[g]) };
    }
    let live_rows = live.iter().filter(|&&l| l).count();
    if live_rows > 0 {
        *one_vector = all_fit && candidates >= (3 * live_rows) as f32;
    }
    for g in 0..count {
        if live[g] {
            // SAFETY: as above; the output row is writable.
            unsafe { write_threshold::<S, SQUARE>(s, block.x_row(first + g), block.y_row(first + g), n, max[g], scale, tau[g]) };
        }
    }
}

/// Expands to the per-instruction-set entry points of this family.
macro_rules! entmax_kernels {
    ($token:ty, [$($feature:literal),*], $sparsemax:ident, $entmax15:ident, $alpha:ident,
     $sparsemax_bwd:ident, $entmax15_bwd:ident, $alpha_bwd:ident) => {
        /// Sparsemax of a block of rows; see
        /// [`exact_rows`](crate::entmax::exact_rows).
        ///
        /// # Safety
        ///
        /// As for `exact_rows`, and the CPU runs this instruction set.
        $(#[target_feature(enable = $feature)])*
        pub unsafe fn $sparsemax(block: crate::entmax::Rows) {
            /// One row; see `exact_row`.
            $(#[target_feature(enable = $feature)])*
            unsafe fn row(x: *const f32, y: *mut f32, n: usize) {
                // SAFETY: the caller guarantees the ISA and the row contract.
                unsafe { crate::entmax::exact_row::<_, false>(<$token>::new_unchecked(), x, y, n) }
            }
            // SAFETY: the caller guarantees the ISA and the block contract.
            unsafe { crate::entmax::exact_rows::<_, false>(<$token>::new_unchecked(), block, row) }
        }

        /// Entmax-1.5 of a block of rows; see
        /// [`exact_rows`](crate::entmax::exact_rows).
        ///
        /// # Safety
        ///
        /// As for `exact_rows`, and the CPU runs this instruction set.
        $(#[target_feature(enable = $feature)])*
        pub unsafe fn $entmax15(block: crate::entmax::Rows) {
            /// One row; see `exact_row`.
            $(#[target_feature(enable = $feature)])*
            unsafe fn row(x: *const f32, y: *mut f32, n: usize) {
                // SAFETY: the caller guarantees the ISA and the row contract.
                unsafe { crate::entmax::exact_row::<_, true>(<$token>::new_unchecked(), x, y, n) }
            }
            // SAFETY: the caller guarantees the ISA and the block contract.
            unsafe { crate::entmax::exact_rows::<_, true>(<$token>::new_unchecked(), block, row) }
        }

        /// α-entmax of a block of rows with one α; see
        /// [`alpha_rows`](crate::entmax::alpha_rows).
        ///
        /// # Safety
        ///
        /// As for `alpha_rows`, and the CPU runs this instruction set.
        $(#[target_feature(enable = $feature)])*
        pub unsafe fn $alpha(block: crate::entmax::Rows, alpha: f32) {
            // SAFETY: the caller guarantees the ISA and the block contract.
            unsafe { crate::entmax::alpha_rows(<$token>::new_unchecked(), block, alpha) }
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

        /// Row α-entmax backward and α-gradient; see
        /// [`alpha_backward_row`](crate::entmax::alpha_backward_row).
        ///
        /// # Safety
        ///
        /// As for `alpha_backward_row`, and the CPU runs this instruction set.
        $(#[target_feature(enable = $feature)])*
        pub unsafe fn $alpha_bwd(p: *const f32, dy: *const f32, dx: *mut f32, n: usize, alpha: f32) -> f32 {
            // SAFETY: the caller guarantees the ISA and the row contract.
            unsafe { crate::entmax::alpha_backward_row(<$token>::new_unchecked(), p, dy, dx, n, alpha) }
        }
    };
}
use entmax_kernels;
