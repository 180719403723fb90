//! Rotary position embedding (RoPE) over one token's row of heads.
//!
//! A row holds `heads` heads of `head_dim` values back to back. The first
//! `rot` values of each head (`rot` even, at most `head_dim`) are rotated in
//! pairs by the angles of the row's position, and the rest pass through.
//! Two pair layouts exist:
//! - interleaved (GPT-J, the original RoFormer): pair i is (2i, 2i + 1);
//! - half-split (GPT-NeoX, Llama): pair i is (i, i + rot/2).
//!
//! A pair (a, b) with angle θ becomes (a·cos θ − b·sin θ, b·cos θ + a·sin θ).
//! The driver computes cos and sin per row in f64 and passes them in the
//! layout that each body wants; see the body's contract.

use crate::simd::SimdF32;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;
pub mod scalar;

/// Loads `len` values at `p + i`, zero-padded when `len < LANES`. A
/// function, not a closure, so that it inlines into the `#[target_feature]`
/// entry points.
#[inline(always)]
unsafe fn load_part<S: SimdF32>(s: S, p: *const f32, i: usize, len: usize) -> S::V {
    // SAFETY: the caller keeps [i, i + len) inside the buffer.
    unsafe {
        if len < S::LANES {
            s.load_tail(p.add(i), len, 0.0)
        } else {
            s.load(p.add(i))
        }
    }
}

/// Copies the pass-through values `rot .. head_dim` of every head when the
/// output is a different buffer.
#[inline(always)]
unsafe fn copy_tail(x: *const f32, y: *mut f32, heads: usize, head_dim: usize, rot: usize) {
    if std::ptr::eq(x, y) || rot == head_dim {
        return;
    }
    for h in 0..heads {
        let base = h * head_dim;
        // SAFETY: [base + rot, base + head_dim) is inside both rows, which
        // do not overlap when they differ (the caller's contract).
        unsafe { std::ptr::copy_nonoverlapping(x.add(base + rot), y.add(base + rot), head_dim - rot) };
    }
}

/// Rotates the interleaved pairs of every head of one row.
///
/// `cos[j]` holds cos θ_{j/2} for j < rot, and `sin[j]` holds −sin θ_{j/2}
/// for even j and +sin θ_{j/2} for odd j, so that
/// `y = x·cos + swap_pairs(x)·sin` rotates each pair.
///
/// # Safety
///
/// `x` and `y` address `heads·head_dim` values (readable, writable) and are
/// equal or disjoint; `cos` and `sin` address `rot` readable values; `rot` is
/// even and at most `head_dim`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub unsafe fn rope_interleaved_row<S: SimdF32>(
    s: S,
    x: *const f32,
    y: *mut f32,
    heads: usize,
    head_dim: usize,
    rot: usize,
    cos: *const f32,
    sin: *const f32,
) {
    debug_assert!(rot.is_multiple_of(2) && rot <= head_dim);
    let l = S::LANES;
    // SAFETY: every access stays inside [base, base + rot) of a head and
    // [0, rot) of the tables, by the caller's contract.
    unsafe {
        for h in 0..heads {
            let (xh, yh) = (x.add(h * head_dim), y.add(h * head_dim));
            if l == 1 {
                // One lane cannot swap pairs; rotate each pair directly, with
                // the same FMA order as the vector path.
                let mut j = 0;
                while j < rot {
                    let (a, b) = (*xh.add(j), *xh.add(j + 1));
                    let (c, sn) = (*cos.add(j), *sin.add(j + 1));
                    *yh.add(j) = a.mul_add(c, b * -sn);
                    *yh.add(j + 1) = b.mul_add(c, a * sn);
                    j += 2;
                }
                continue;
            }
            let mut j = 0;
            // LANES is even, so a pair never straddles two vectors and the
            // tail (rot − j, even) holds whole pairs.
            while j < rot {
                let len = l.min(rot - j);
                let (v, c, sn) = (load_part(s, xh, j, len), load_part(s, cos, j, len), load_part(s, sin, j, len));
                let r = s.fma(v, c, s.mul(s.swap_pairs(v), sn));
                if len < l {
                    s.store_tail(yh.add(j), len, r);
                } else {
                    s.store(yh.add(j), r);
                }
                j += l;
            }
        }
        copy_tail(x, y, heads, head_dim, rot);
    }
}

/// Rotates the half-split pairs of every head of one row.
///
/// `cos[i]` and `sin[i]` hold cos θ_i and sin θ_i for i < rot/2.
///
/// # Safety
///
/// As for [`rope_interleaved_row`], except that `cos` and `sin` address
/// `rot/2` readable values.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub unsafe fn rope_half_row<S: SimdF32>(
    s: S,
    x: *const f32,
    y: *mut f32,
    heads: usize,
    head_dim: usize,
    rot: usize,
    cos: *const f32,
    sin: *const f32,
) {
    debug_assert!(rot.is_multiple_of(2) && rot <= head_dim);
    let l = S::LANES;
    let half = rot / 2;
    // SAFETY: every access stays inside [base, base + rot) of a head and
    // [0, rot/2) of the tables, by the caller's contract.
    unsafe {
        for h in 0..heads {
            let (xh, yh) = (x.add(h * head_dim), y.add(h * head_dim));
            let mut i = 0;
            while i < half {
                let len = l.min(half - i);
                let (a, b) = (load_part(s, xh, i, len), load_part(s, xh, half + i, len));
                let (c, sn) = (load_part(s, cos, i, len), load_part(s, sin, i, len));
                let ya = s.fma(a, c, s.mul(b, s.sub(s.splat(0.0), sn)));
                let yb = s.fma(b, c, s.mul(a, sn));
                if len < l {
                    s.store_tail(yh.add(i), len, ya);
                    s.store_tail(yh.add(half + i), len, yb);
                } else {
                    s.store(yh.add(i), ya);
                    s.store(yh.add(half + i), yb);
                }
                i += l;
            }
        }
        copy_tail(x, y, heads, head_dim, rot);
    }
}

/// Expands to the per-instruction-set entry points of this family.
macro_rules! rope_kernels {
    ($token:ty, [$($feature:literal),*], $interleaved:ident, $half:ident) => {
        /// Interleaved RoPE over one row; see
        /// [`rope_interleaved_row`](crate::rope::rope_interleaved_row).
        ///
        /// # Safety
        ///
        /// As for `rope_interleaved_row`, and the CPU runs this instruction set.
        #[allow(clippy::too_many_arguments)]
        $(#[target_feature(enable = $feature)])*
        pub unsafe fn $interleaved(
            x: *const f32, y: *mut f32, heads: usize, head_dim: usize, rot: usize, cos: *const f32, sin: *const f32,
        ) {
            // SAFETY: the caller guarantees the ISA and the row contract.
            unsafe {
                crate::rope::rope_interleaved_row(<$token>::new_unchecked(), x, y, heads, head_dim, rot, cos, sin)
            }
        }

        /// Half-split RoPE over one row; see
        /// [`rope_half_row`](crate::rope::rope_half_row).
        ///
        /// # Safety
        ///
        /// As for `rope_half_row`, and the CPU runs this instruction set.
        #[allow(clippy::too_many_arguments)]
        $(#[target_feature(enable = $feature)])*
        pub unsafe fn $half(
            x: *const f32, y: *mut f32, heads: usize, head_dim: usize, rot: usize, cos: *const f32, sin: *const f32,
        ) {
            // SAFETY: the caller guarantees the ISA and the row contract.
            unsafe { crate::rope::rope_half_row(<$token>::new_unchecked(), x, y, heads, head_dim, rot, cos, sin) }
        }
    };
}
use rope_kernels;
