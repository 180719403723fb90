//! Softmax, log-softmax and the confidence estimators over one f32 row.
//!
//! The bodies are written once against [`SimdF32`] and instantiated per
//! instruction set by `softmax_kernels!` in the sibling files. Every body
//! takes one contiguous row, except [`softmax_rows`], which takes a block
//! of rows so that short rows share their passes. The driver in the `mlak`
//! crate walks strides and threads.
//!
//! Non-finite policy shared by all of them:
//! - a NaN anywhere in the row makes every output of the row NaN;
//! - -inf entries get probability 0; a row that is all -inf (or empty) has
//!   all probabilities 0, log-probabilities -inf and entropy 0;
//! - +inf entries make the probabilities NaN, because +inf - +inf is
//!   undefined;
//! - the row maximum is subtracted before exponentiation, so finite
//!   magnitudes up to f32::MAX never overflow.

use crate::simd::{exp, exp_nonpositive, SimdF32, MAX_LANES};

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;
pub mod scalar;

/// Per-row outputs of the confidence estimators, for a temperature T and
/// p = softmax(x / T).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Confidence {
    /// Shannon entropy −Σ p·ln p, in nats.
    pub entropy: f32,
    /// max p.
    pub max_prob: f32,
    /// Top-1 minus top-2 probability. A tie for the maximum gives 0; a row
    /// of one element gives 1.
    pub margin: f32,
    /// Population variance of the raw logits x (not divided by T).
    pub logit_variance: f32,
}

impl Confidence {
    const NAN: Confidence = Confidence {
        entropy: f32::NAN,
        max_prob: f32::NAN,
        margin: f32::NAN,
        logit_variance: f32::NAN,
    };
}

/// Pass 1 of softmax: the row maximum and whether any entry is NaN.
#[inline(always)]
pub(crate) unsafe fn max_and_nan<S: SimdF32>(s: S, x: *const f32, n: usize) -> (f32, bool) {
    let l = S::LANES;
    let ninf = s.splat(f32::NEG_INFINITY);
    let (mut m0, mut m1, mut m2, mut m3) = (ninf, ninf, ninf, ninf);
    let mut nan = s.mask_none();
    let mut i = 0;
    // SAFETY: every load covers x[i .. i + l] with i + l <= n,
    // or the tail x[i .. n], all inside the row the caller provides.
    unsafe {
        while i + 4 * l <= n {
            let v0 = s.load(x.add(i));
            let v1 = s.load(x.add(i + l));
            let v2 = s.load(x.add(i + 2 * l));
            let v3 = s.load(x.add(i + 3 * l));
            m0 = s.max(m0, v0);
            m1 = s.max(m1, v1);
            m2 = s.max(m2, v2);
            m3 = s.max(m3, v3);
            let n01 = s.mask_or(s.is_nan(v0), s.is_nan(v1));
            let n23 = s.mask_or(s.is_nan(v2), s.is_nan(v3));
            nan = s.mask_or(nan, s.mask_or(n01, n23));
            i += 4 * l;
        }
        while i + l <= n {
            let v = s.load(x.add(i));
            m0 = s.max(m0, v);
            nan = s.mask_or(nan, s.is_nan(v));
            i += l;
        }
        if i < n {
            let v = s.load_tail(x.add(i), n - i, f32::NEG_INFINITY);
            m0 = s.max(m0, v);
            nan = s.mask_or(nan, s.is_nan(v));
        }
    }
    let m = s.reduce_max(s.max(s.max(m0, m1), s.max(m2, m3)));
    (m, s.mask_any(nan))
}

/// Fills `y[0 .. n]` with `value`.
#[inline(always)]
pub(crate) unsafe fn fill<S: SimdF32>(s: S, y: *mut f32, n: usize, value: f32) {
    let l = S::LANES;
    let v = s.splat(value);
    let mut i = 0;
    // SAFETY: stores stay inside y[0 .. n], which the caller provides.
    unsafe {
        while i + l <= n {
            s.store(y.add(i), v);
            i += l;
        }
        if i < n {
            s.store_tail(y.add(i), n - i, v);
        }
    }
}

/// Computes `y = softmax(x · inv_t)` over one row of `n` elements, or
/// `y = log_softmax(x · inv_t)` when `LOG` is set.
///
/// Three passes: the maximum m, then e = exp((x − m)·inv_t) summed (and
/// stored into `y` for softmax), then the normalization.
///
/// # Safety
///
/// `x[0 .. n]` must be readable and `y[0 .. n]` writable. `y` may equal `x`
/// (in place) but must not otherwise overlap it. `inv_t` is positive and
/// finite.
#[inline(always)]
pub unsafe fn softmax_row<S: SimdF32, const LOG: bool>(
    s: S,
    x: *const f32,
    y: *mut f32,
    n: usize,
    inv_t: f32,
) {
    debug_assert!(inv_t > 0.0 && inv_t.is_finite());
    // SAFETY: the caller's contract covers x[0 .. n] and y[0 .. n], which
    // is all that the passes access.
    unsafe {
        let (m, nan) = max_and_nan(s, x, n);
        if nan || !m.is_finite() {
            return special_row::<S, LOG>(s, y, n, m, nan);
        }
        let sum = exp_and_sum::<S, LOG>(s, x, y, n, m, inv_t);
        normalize::<S, LOG>(s, x, y, n, m, inv_t, sum);
    }
}

/// Fills the output row of a row whose maximum `m` is not finite or that
/// contains a NaN (`nan`): NaN for a NaN or a +inf, and the empty
/// distribution for an all −inf row.
///
/// # Safety
///
/// `y[0 .. n]` must be writable.
#[inline(always)]
unsafe fn special_row<S: SimdF32, const LOG: bool>(s: S, y: *mut f32, n: usize, m: f32, nan: bool) {
    let value = if nan || m == f32::INFINITY {
        f32::NAN
    } else if LOG {
        f32::NEG_INFINITY
    } else {
        0.0
    };
    // SAFETY: forwarded from the caller.
    unsafe { fill(s, y, n, value) }
}

/// Pass 2 of [`softmax_row`]: returns Σ e with e = exp((x − m)·inv_t), and
/// stores e into `y` unless `LOG` is set.
///
/// # Safety
///
/// As for [`softmax_row`], with `m` the finite maximum of a row without
/// NaN, so that x − m ≤ 0 as `exp_nonpositive` needs.
#[inline(always)]
unsafe fn exp_and_sum<S: SimdF32, const LOG: bool>(
    s: S,
    x: *const f32,
    y: *mut f32,
    n: usize,
    m: f32,
    inv_t: f32,
) -> f32 {
    let l = S::LANES;
    let vm = s.splat(m);
    let vt = s.splat(inv_t);
    let zero = s.splat(0.0);
    let (mut s0, mut s1, mut s2, mut s3) = (zero, zero, zero, zero);
    let mut i = 0;
    // SAFETY: loads and stores cover x[i .. i + l] and y[i .. i + l] with
    // i + l <= n, or the tails up to n.
    unsafe {
        while i + 4 * l <= n {
            let e0 = exp_nonpositive(s, s.mul(s.sub(s.load(x.add(i)), vm), vt));
            let e1 = exp_nonpositive(s, s.mul(s.sub(s.load(x.add(i + l)), vm), vt));
            let e2 = exp_nonpositive(s, s.mul(s.sub(s.load(x.add(i + 2 * l)), vm), vt));
            let e3 = exp_nonpositive(s, s.mul(s.sub(s.load(x.add(i + 3 * l)), vm), vt));
            if !LOG {
                s.store(y.add(i), e0);
                s.store(y.add(i + l), e1);
                s.store(y.add(i + 2 * l), e2);
                s.store(y.add(i + 3 * l), e3);
            }
            s0 = s.add(s0, e0);
            s1 = s.add(s1, e1);
            s2 = s.add(s2, e2);
            s3 = s.add(s3, e3);
            i += 4 * l;
        }
        while i + l <= n {
            let e = exp_nonpositive(s, s.mul(s.sub(s.load(x.add(i)), vm), vt));
            if !LOG {
                s.store(y.add(i), e);
            }
            s0 = s.add(s0, e);
            i += l;
        }
        if i < n {
            // Filling with -inf makes the padding lanes contribute exp(-inf) = 0.
            let v = s.load_tail(x.add(i), n - i, f32::NEG_INFINITY);
            let e = exp_nonpositive(s, s.mul(s.sub(v, vm), vt));
            if !LOG {
                s.store_tail(y.add(i), n - i, e);
            }
            s0 = s.add(s0, e);
        }
    }
    s.reduce_add(s.add(s.add(s0, s1), s.add(s2, s3)))
}

/// Pass 3 of [`softmax_row`]: scales the stored e by 1 / `sum` for
/// softmax, or writes (x − m)·inv_t − ln `sum` for log-softmax.
///
/// # Safety
///
/// As for [`exp_and_sum`], after it ran on the same row.
#[inline(always)]
unsafe fn normalize<S: SimdF32, const LOG: bool>(
    s: S,
    x: *const f32,
    y: *mut f32,
    n: usize,
    m: f32,
    inv_t: f32,
    sum: f32,
) {
    let l = S::LANES;
    let (vm, vt) = (s.splat(m), s.splat(inv_t));
    let mut i = 0;
    // SAFETY: loads and stores cover x[i .. i + l] and y[i .. i + l] with
    // i + l <= n, or the tails up to n.
    unsafe {
        if LOG {
            let lse = s.splat(-sum.ln());
            while i + l <= n {
                let v = s.fma(s.sub(s.load(x.add(i)), vm), vt, lse);
                s.store(y.add(i), v);
                i += l;
            }
            if i < n {
                let v = s.load_tail(x.add(i), n - i, 0.0);
                s.store_tail(y.add(i), n - i, s.fma(s.sub(v, vm), vt, lse));
            }
        } else {
            let r = s.splat(1.0 / sum);
            while i + l <= n {
                s.store(y.add(i), s.mul(s.load(y.add(i)), r));
                i += l;
            }
            if i < n {
                let v = s.load_tail(y.add(i), n - i, 0.0);
                s.store_tail(y.add(i), n - i, s.mul(v, r));
            }
        }
    }
}

/// Rows that [`softmax_rows`] processes in lockstep when they are short.
/// One short row is a chain of dependent passes and reductions, so each
/// pass runs over the whole group before the next, and the out-of-order
/// core overlaps the rows' chains.
pub const SOFTMAX_GROUP_ROWS: usize = 4;

/// Maximum row length that [`softmax_rows`] processes in groups. Longer
/// rows have enough independent vectors in each pass on their own.
pub const SOFTMAX_GROUP_MAX_N: usize = 256;

/// Computes [`softmax_row`] (or log-softmax with `LOG`) for `rows` rows of
/// `n` elements: row r of the input at `x + r·x_stride`, of the output at
/// `y + r·y_stride`. Short rows go in groups of [`SOFTMAX_GROUP_ROWS`].
///
/// # Safety
///
/// As for [`softmax_row`] for every row. Output row r equals input row r
/// (in place) or overlaps no input row and no other output row.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub unsafe fn softmax_rows<S: SimdF32, const LOG: bool>(
    s: S,
    x: *const f32,
    x_stride: usize,
    y: *mut f32,
    y_stride: usize,
    rows: usize,
    n: usize,
    inv_t: f32,
) {
    const G: usize = SOFTMAX_GROUP_ROWS;
    let x_row = |r: usize| x.wrapping_add(r * x_stride);
    let y_row = |r: usize| y.wrapping_add(r * y_stride);
    let mut r = 0;
    // SAFETY: every row below is inside the block, which the caller's
    // contract covers. A group's passes write only its own output rows, so
    // they change no other row's input.
    unsafe {
        if n <= SOFTMAX_GROUP_MAX_N {
            while r + G <= rows {
                let xs: [*const f32; G] = core::array::from_fn(|g| x_row(r + g));
                let ys: [*mut f32; G] = core::array::from_fn(|g| y_row(r + g));
                let mut max = [0.0f32; G];
                let mut plain = true;
                for g in 0..G {
                    let (m, nan) = max_and_nan(s, xs[g], n);
                    max[g] = m;
                    plain &= !nan && m.is_finite();
                }
                if plain {
                    let sums: [f32; G] =
                        core::array::from_fn(|g| exp_and_sum::<S, LOG>(s, xs[g], ys[g], n, max[g], inv_t));
                    for g in 0..G {
                        normalize::<S, LOG>(s, xs[g], ys[g], n, max[g], inv_t, sums[g]);
                    }
                } else {
                    for g in 0..G {
                        softmax_row::<S, LOG>(s, xs[g], ys[g], n, inv_t);
                    }
                }
                r += G;
            }
        }
        while r < rows {
            softmax_row::<S, LOG>(s, x_row(r), y_row(r), n, inv_t);
            r += 1;
        }
    }
}

/// Statistics of pass 1 of [`confidence_row`].
struct RowStats {
    top1: f32,
    top2: f32,
    min: f32,
    sum: f32,
    nan: bool,
}

/// Merges per-lane top-2 candidates into the row's top-2, counting
/// duplicates, so that a tie for the maximum gives top1 == top2.
fn merge_top2(firsts: &[f32], seconds: &[f32]) -> (f32, f32) {
    let (mut a, mut b) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for &v in firsts.iter().chain(seconds) {
        if v > a {
            b = a;
            a = v;
        } else if v > b {
            b = v;
        }
    }
    (a, b)
}

/// Pass 1 of the confidence estimators: top-2, minimum, sum and NaN flag.
#[inline(always)]
unsafe fn row_stats<S: SimdF32>(s: S, x: *const f32, n: usize) -> RowStats {
    let l = S::LANES;
    let ninf = s.splat(f32::NEG_INFINITY);
    let (mut a0, mut a1, mut b0, mut b1) = (ninf, ninf, ninf, ninf);
    let (mut mn0, mut mn1) = (s.splat(f32::INFINITY), s.splat(f32::INFINITY));
    let (mut sum0, mut sum1) = (s.splat(0.0), s.splat(0.0));
    let mut nan = s.mask_none();

    // Per lane, `a` is the largest value seen and `b` the second largest:
    // b = max(b, min(a, v)) keeps a duplicate of the maximum as second.
    let mut i = 0;
    // SAFETY: every load covers x[i .. i + l] with i + l <= n, or the tail
    // x[i .. n], all inside the row the caller provides.
    unsafe {
        while i + 2 * l <= n {
            let v0 = s.load(x.add(i));
            let v1 = s.load(x.add(i + l));
            b0 = s.max(b0, s.min(a0, v0));
            b1 = s.max(b1, s.min(a1, v1));
            a0 = s.max(a0, v0);
            a1 = s.max(a1, v1);
            mn0 = s.min(mn0, v0);
            mn1 = s.min(mn1, v1);
            sum0 = s.add(sum0, v0);
            sum1 = s.add(sum1, v1);
            nan = s.mask_or(nan, s.mask_or(s.is_nan(v0), s.is_nan(v1)));
            i += 2 * l;
        }
        while i < n {
            let (vmax, vmin, vsum) = if i + l <= n {
                let v = s.load(x.add(i));
                (v, v, v)
            } else {
                let p = x.add(i);
                (
                    s.load_tail(p, n - i, f32::NEG_INFINITY),
                    s.load_tail(p, n - i, f32::INFINITY),
                    s.load_tail(p, n - i, 0.0),
                )
            };
            b0 = s.max(b0, s.min(a0, vmax));
            a0 = s.max(a0, vmax);
            mn0 = s.min(mn0, vmin);
            sum0 = s.add(sum0, vsum);
            nan = s.mask_or(nan, s.is_nan(vsum));
            i += l;
        }
    }

    let mut firsts = [f32::NEG_INFINITY; 2 * MAX_LANES];
    let mut seconds = [f32::NEG_INFINITY; 2 * MAX_LANES];
    let mut buf = [0.0f32; MAX_LANES];
    for (k, v) in [a0, a1].into_iter().enumerate() {
        s.to_array(v, &mut buf);
        firsts[k * l..(k + 1) * l].copy_from_slice(&buf[..l]);
    }
    for (k, v) in [b0, b1].into_iter().enumerate() {
        s.to_array(v, &mut buf);
        seconds[k * l..(k + 1) * l].copy_from_slice(&buf[..l]);
    }
    let (top1, top2) = merge_top2(&firsts[..2 * l], &seconds[..2 * l]);

    RowStats {
        top1,
        top2,
        min: s.reduce_min(s.min(mn0, mn1)),
        sum: s.reduce_add(s.add(sum0, sum1)),
        nan: s.mask_any(nan),
    }
}

/// Computes the confidence estimators of one row of `n` logits at inverse
/// temperature `inv_t`, in two passes over the row.
///
/// Pass 1 finds the top-2 logits, the minimum and the sum. Pass 2
/// accumulates S0 = Σe and S1 = Σe·d with d = x − max and e = exp(d·inv_t),
/// from which entropy = ln S0 − inv_t·S1/S0, max p = 1/S0 and the margin
/// (1 − exp((top2 − max)·inv_t))/S0 follow. The same pass accumulates the
/// centered sums of u = (x − mean)/h, with h half the range of the row, so
/// that the variance h²·(Σu² − (Σu)²/n)/n is the corrected two-pass formula
/// and cannot overflow unless the variance itself does.
///
/// Non-finite rules beyond the module's policy: the variance is 0 for an
/// empty row or a row whose entries are all the same infinity, and +inf for
/// a row that mixes an infinity with other values.
///
/// # Safety
///
/// `x[0 .. n]` must be readable. `inv_t` is positive and finite.
#[inline(always)]
pub unsafe fn confidence_row<S: SimdF32>(s: S, x: *const f32, n: usize, inv_t: f32) -> Confidence {
    debug_assert!(inv_t > 0.0 && inv_t.is_finite());
    // SAFETY: the caller guarantees x[0 .. n] is readable.
    let st = unsafe { row_stats(s, x, n) };
    if st.nan {
        return Confidence::NAN;
    }
    if st.top1 == f32::NEG_INFINITY {
        return Confidence::default();
    }
    let infinite = st.top1.is_infinite() || st.min.is_infinite();
    if st.top1 == f32::INFINITY {
        let logit_variance = if st.min == f32::INFINITY { 0.0 } else { f32::INFINITY };
        return Confidence { logit_variance, ..Confidence::NAN };
    }
    let half_range = st.top1 * 0.5 - st.min * 0.5;
    let h = if half_range > 0.0 && half_range.is_finite() { half_range } else { 1.0 };
    let mean = st.sum / n as f32;

    let l = S::LANES;
    let (vm, vt, vmean, vinv_h) = (s.splat(st.top1), s.splat(inv_t), s.splat(mean), s.splat(1.0 / h));
    let zero = s.splat(0.0);
    let (mut s0, mut s1, mut u1, mut u2) = (zero, zero, zero, zero);
    let mut i = 0;
    // SAFETY: loads cover x[i .. i + l] with i + l <= n, or the tail x[i .. n].
    unsafe {
        while i < n {
            let full = i + l <= n;
            let (v, vc) = if full {
                let v = s.load(x.add(i));
                (v, v)
            } else {
                // -inf padding gives e = 0; padding at the mean gives u = 0.
                let p = x.add(i);
                (s.load_tail(p, n - i, f32::NEG_INFINITY), s.load_tail(p, n - i, mean))
            };
            // d <= 0 and no NaN: NaN and +inf rows returned above.
            let d = s.sub(v, vm);
            let e = exp_nonpositive(s, s.mul(d, vt));
            s0 = s.add(s0, e);
            // e·d is 0·(−inf) = NaN for a -inf logit; its true contribution is 0.
            s1 = s.add(s1, s.select(s.gt(e, zero), s.mul(e, d), zero));
            let u = s.mul(s.sub(vc, vmean), vinv_h);
            u1 = s.add(u1, u);
            u2 = s.fma(u, u, u2);
            i += l;
        }
    }
    let s0 = s.reduce_add(s0);
    let s1 = s.reduce_add(s1);
    let u1 = s.reduce_add(u1);
    let u2 = s.reduce_add(u2);
    let nf = n as f32;

    // Rounding can push a near-zero entropy below 0; the clamp keeps NaN.
    let entropy = clamp_nonnegative(s0.ln() - inv_t * s1 / s0);
    let max_prob = 1.0 / s0;
    let margin = (1.0 - ((st.top2 - st.top1) * inv_t).exp()) / s0;
    let logit_variance = if infinite {
        if st.top1 == st.min {
            0.0
        } else {
            f32::INFINITY
        }
    } else {
        let q = clamp_nonnegative((u2 - u1 * u1 / nf) / nf);
        q * h * h
    };
    Confidence { entropy, max_prob, margin, logit_variance }
}

/// Returns `v` raised to 0 when negative, and NaN when NaN (unlike
/// `f32::max`).
#[inline(always)]
fn clamp_nonnegative(v: f32) -> f32 {
    if v < 0.0 {
        0.0
    } else {
        v
    }
}

/// Computes `y[i] = exp(x[i])` with the vector [`exp`], for testing and for
/// callers that need the same exponential as the kernels.
///
/// # Safety
///
/// `x[0 .. n]` must be readable and `y[0 .. n]` writable.
#[inline(always)]
pub unsafe fn exp_row<S: SimdF32>(s: S, x: *const f32, y: *mut f32, n: usize) {
    let l = S::LANES;
    let mut i = 0;
    // SAFETY: accesses stay inside x[0 .. n] and y[0 .. n].
    unsafe {
        while i + l <= n {
            s.store(y.add(i), exp(s, s.load(x.add(i))));
            i += l;
        }
        if i < n {
            let v = s.load_tail(x.add(i), n - i, 0.0);
            s.store_tail(y.add(i), n - i, exp(s, v));
        }
    }
}

/// Expands to one block entry point of [`softmax_rows`]: softmax with
/// `$log` false, log-softmax with it true.
macro_rules! softmax_rows_entry {
    ($token:ty, [$($feature:literal),*], $name:ident, $log:literal, $what:literal) => {
        #[doc = concat!($what, " of a block of rows; see")]
        /// [`softmax_rows`](crate::softmax::softmax_rows).
        ///
        /// # Safety
        ///
        /// As for `softmax_rows`, and the CPU runs this instruction set.
        $(#[target_feature(enable = $feature)])*
        pub unsafe fn $name(x: *const f32, xs: usize, y: *mut f32, ys: usize, rows: usize, n: usize, inv_t: f32) {
            // SAFETY: the caller guarantees the ISA and the block contract.
            unsafe {
                crate::softmax::softmax_rows::<_, $log>(<$token>::new_unchecked(), x, xs, y, ys, rows, n, inv_t)
            }
        }
    };
}
pub(crate) use softmax_rows_entry;

/// Expands to the per-instruction-set entry points of this family. The
/// bodies are the generic functions above; only the token and the
/// `#[target_feature]` set change.
macro_rules! softmax_kernels {
    ($token:ty, [$($feature:literal),*], $softmax:ident, $softmax_rows:ident, $log_softmax_rows:ident,
     $confidence:ident, $exp:ident) => {
        /// Row softmax; see [`softmax_row`](crate::softmax::softmax_row).
        ///
        /// # Safety
        ///
        /// As for `softmax_row`, and the CPU runs this instruction set.
        $(#[target_feature(enable = $feature)])*
        pub unsafe fn $softmax(x: *const f32, y: *mut f32, n: usize, inv_t: f32) {
            // SAFETY: the caller guarantees the ISA and the row contract.
            unsafe { crate::softmax::softmax_row::<_, false>(<$token>::new_unchecked(), x, y, n, inv_t) }
        }

        crate::softmax::softmax_rows_entry!($token, [$($feature),*], $softmax_rows, false, "Softmax");
        crate::softmax::softmax_rows_entry!($token, [$($feature),*], $log_softmax_rows, true, "Log-softmax");

        /// Row confidence estimators; see
        /// [`confidence_row`](crate::softmax::confidence_row).
        ///
        /// # Safety
        ///
        /// As for `confidence_row`, and the CPU runs this instruction set.
        $(#[target_feature(enable = $feature)])*
        pub unsafe fn $confidence(x: *const f32, n: usize, inv_t: f32) -> crate::softmax::Confidence {
            // SAFETY: the caller guarantees the ISA and the row contract.
            unsafe { crate::softmax::confidence_row(<$token>::new_unchecked(), x, n, inv_t) }
        }

        /// Element-wise exp; see [`exp_row`](crate::softmax::exp_row).
        ///
        /// # Safety
        ///
        /// As for `exp_row`, and the CPU runs this instruction set.
        $(#[target_feature(enable = $feature)])*
        pub unsafe fn $exp(x: *const f32, y: *mut f32, n: usize) {
            // SAFETY: the caller guarantees the ISA and the row contract.
            unsafe { crate::softmax::exp_row(<$token>::new_unchecked(), x, y, n) }
        }
    };
}
use softmax_kernels;
