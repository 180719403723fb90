//! LayerNorm and RMSNorm over one f32 row, each with an optional fused
//! residual add whose sum can be stored.
//!
//! With a residual, the normalized value is h = x + residual; otherwise
//! h = x. The bodies are written once against [`SimdF32`] and instantiated
//! per instruction set by `norm_kernels!` in the sibling files.
//!
//! Non-finite policy: a NaN or infinity in h makes the whole output row NaN
//! (LayerNorm) or NaN where it meets the infinite scale (RMSNorm: an
//! infinite entry makes the mean square infinite, so every finite entry
//! becomes 0 and the infinite entries NaN).
//!
//! NOTE: the sums run in f32 without rescaling, so a row whose sum (or sum
//! of squares, for RMSNorm) overflows f32 is treated as containing an
//! infinity: |h| must stay below about 1.8e19/√n for RMSNorm.

use crate::simd::SimdF32;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;
pub mod scalar;

/// Pointers of one row for the norm bodies. `residual`, `sum`, `gamma` and
/// `beta` may be null, meaning no residual add, no stored sum, scale 1 and
/// shift 0.
#[derive(Clone, Copy, Debug)]
pub struct NormRow {
    pub x: *const f32,
    pub residual: *const f32,
    pub sum: *mut f32,
    pub gamma: *const f32,
    pub beta: *const f32,
    pub y: *mut f32,
}

/// Loads `len` values at `p + i`, a full vector when `len == LANES` and a
/// tail padded with `fill` otherwise.
///
/// Helpers here are functions, not closures, because closures do not
/// inherit the `#[target_feature]` set of the entry point and would not be
/// inlined into it.
#[inline(always)]
unsafe fn load_part<S: SimdF32>(s: S, p: *const f32, i: usize, len: usize, fill: f32) -> S::V {
    // SAFETY: the caller keeps [i, i + len) inside the buffer.
    unsafe {
        if len < S::LANES {
            s.load_tail(p.add(i), len, fill)
        } else {
            s.load(p.add(i))
        }
    }
}

/// Loads h = x + residual (or x) at `i`, `len` lanes when `len < LANES`.
#[inline(always)]
unsafe fn load_h<S: SimdF32>(s: S, row: &NormRow, i: usize, len: usize, fill: f32) -> S::V {
    // SAFETY: the caller keeps [i, i + len) inside the row.
    unsafe {
        if row.residual.is_null() {
            load_part(s, row.x, i, len, fill)
        } else {
            // The residual's padding is 0, so a padded lane of h is `fill`.
            s.add(load_part(s, row.x, i, len, fill), load_part(s, row.residual, i, len, 0.0))
        }
    }
}

/// Reads h back after pass 1: from the stored sum when there is one, which
/// also keeps a sum stored over x (in place) correct.
#[inline(always)]
unsafe fn reload_h<S: SimdF32>(s: S, row: &NormRow, i: usize, len: usize, fill: f32) -> S::V {
    // SAFETY: the caller keeps [i, i + len) inside the row.
    unsafe {
        if row.sum.is_null() {
            load_h(s, row, i, len, fill)
        } else {
            load_part(s, row.sum, i, len, fill)
        }
    }
}

#[inline(always)]
unsafe fn store<S: SimdF32>(s: S, p: *mut f32, i: usize, len: usize, v: S::V) {
    // SAFETY: the caller keeps [i, i + len) inside the row.
    unsafe {
        if len < S::LANES {
            s.store_tail(p.add(i), len, v)
        } else {
            s.store(p.add(i), v)
        }
    }
}

/// Loads gamma (1 when null) and beta (0 when null) at `i`.
#[inline(always)]
unsafe fn load_affine<S: SimdF32>(s: S, row: &NormRow, i: usize, len: usize) -> (S::V, S::V) {
    // SAFETY: the caller keeps [i, i + len) inside the row.
    unsafe {
        let g = if row.gamma.is_null() { s.splat(1.0) } else { load_part(s, row.gamma, i, len, 1.0) };
        let b = if row.beta.is_null() { s.splat(0.0) } else { load_part(s, row.beta, i, len, 0.0) };
        (g, b)
    }
}

/// Pass 1 shared by both norms: h is formed, stored to `sum` when
/// requested, and Σh (when `SQUARES` is false) or Σh² accumulated.
#[inline(always)]
unsafe fn accumulate<S: SimdF32, const SQUARES: bool>(s: S, row: &NormRow, n: usize) -> f32 {
    let l = S::LANES;
    let zero = s.splat(0.0);
    let (mut a0, mut a1) = (zero, zero);
    let mut i = 0;
    // SAFETY: every access covers [i, i + len) inside the row of n values.
    unsafe {
        while i < n {
            let len = l.min(n - i);
            let h = load_h(s, row, i, len, 0.0);
            if !row.sum.is_null() {
                store(s, row.sum, i, len, h);
            }
            let term = if SQUARES { s.mul(h, h) } else { h };
            if (i / l) % 2 == 0 {
                a0 = s.add(a0, term);
            } else {
                a1 = s.add(a1, term);
            }
            i += l;
        }
    }
    s.reduce_add(s.add(a0, a1))
}

/// Computes LayerNorm of one row of `n` values:
/// `y = (h − mean)/√(var + eps)·gamma + beta` with the population variance,
/// in three passes (Σh, Σ(h − mean)², output), so that the variance is the
/// two-pass formula and does not cancel. `sum`, when not null, receives h.
///
/// # Safety
///
/// Every non-null pointer of `row` addresses `n` values (readable, or
/// writable for `y` and `sum`). `y` and `sum` may each equal `x` or
/// `residual` (in place) but must not otherwise overlap an input, and must
/// not overlap each other. `n > 0` and `eps >= 0`.
#[inline(always)]
pub unsafe fn layernorm_row<S: SimdF32>(s: S, row: NormRow, n: usize, eps: f32) {
    debug_assert!(n > 0 && eps >= 0.0);
    let l = S::LANES;
    // SAFETY: forwarded from the caller; every access stays inside [0, n).
    unsafe {
        let mean = accumulate::<S, false>(s, &row, n) / n as f32;
        let vmean = s.splat(mean);
        let zero = s.splat(0.0);
        let (mut a0, mut a1) = (zero, zero);
        let mut i = 0;
        while i < n {
            let len = l.min(n - i);
            // Padding lanes equal the mean, so they add 0.
            let d = s.sub(reload_h(s, &row, i, len, mean), vmean);
            if (i / l) % 2 == 0 {
                a0 = s.fma(d, d, a0);
            } else {
                a1 = s.fma(d, d, a1);
            }
            i += l;
        }
        let var = s.reduce_add(s.add(a0, a1)) / n as f32;
        let rstd = s.splat(1.0 / (var + eps).sqrt());

        let mut i = 0;
        while i < n {
            let len = l.min(n - i);
            let d = s.mul(s.sub(reload_h(s, &row, i, len, mean), vmean), rstd);
            let (g, b) = load_affine(s, &row, i, len);
            store(s, row.y, i, len, s.fma(d, g, b));
            i += l;
        }
    }
}

/// Computes RMSNorm of one row of `n` values:
/// `y = h/√(mean(h²) + eps)·gamma` in two passes. `row.beta` is ignored.
/// `sum`, when not null, receives h.
///
/// # Safety
///
/// As for [`layernorm_row`].
#[inline(always)]
pub unsafe fn rmsnorm_row<S: SimdF32>(s: S, row: NormRow, n: usize, eps: f32) {
    debug_assert!(n > 0 && eps >= 0.0);
    let l = S::LANES;
    // SAFETY: forwarded from the caller; every access stays inside [0, n).
    unsafe {
        let ms = accumulate::<S, true>(s, &row, n) / n as f32;
        let rstd = s.splat(1.0 / (ms + eps).sqrt());
        let row = NormRow { beta: std::ptr::null(), ..row };
        let mut i = 0;
        while i < n {
            let len = l.min(n - i);
            let h = s.mul(reload_h(s, &row, i, len, 0.0), rstd);
            let (g, _) = load_affine(s, &row, i, len);
            store(s, row.y, i, len, s.mul(h, g));
            i += l;
        }
    }
}

/// Expands to the per-instruction-set entry points of this family.
macro_rules! norm_kernels {
    ($token:ty, [$($feature:literal),*], $layernorm:ident, $rmsnorm:ident) => {
        /// Row LayerNorm; see [`layernorm_row`](crate::norm::layernorm_row).
        ///
        /// # Safety
        ///
        /// As for `layernorm_row`, and the CPU runs this instruction set.
        $(#[target_feature(enable = $feature)])*
        pub unsafe fn $layernorm(row: crate::norm::NormRow, n: usize, eps: f32) {
            // SAFETY: the caller guarantees the ISA and the row contract.
            unsafe { crate::norm::layernorm_row(<$token>::new_unchecked(), row, n, eps) }
        }

        /// Row RMSNorm; see [`rmsnorm_row`](crate::norm::rmsnorm_row).
        ///
        /// # Safety
        ///
        /// As for `rmsnorm_row`, and the CPU runs this instruction set.
        $(#[target_feature(enable = $feature)])*
        pub unsafe fn $rmsnorm(row: crate::norm::NormRow, n: usize, eps: f32) {
            // SAFETY: the caller guarantees the ISA and the row contract.
            unsafe { crate::norm::rmsnorm_row(<$token>::new_unchecked(), row, n, eps) }
        }
    };
}
use norm_kernels;
