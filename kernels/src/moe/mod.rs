//! Mixture-of-experts kernels: the row gather into the expert-contiguous
//! buffer, the weighted combine back into token order, the SwiGLU activation
//! and the skinny matrix-vector path for experts with few tokens.
//!
//! The bodies are written once against [`SimdF32`] and instantiated per
//! instruction set by `moe_kernels!` in the sibling files. The driver in the
//! `mlak` crate builds the routing layout, validates shapes and threads.
//!
//! Slot and token maps are `i64` so that the C layout can be passed through
//! unchanged. A negative entry marks an empty position: a padding slot in
//! the gather map, or a dropped (token, choice) pair in the combine map.

use crate::simd::{exp, SimdF32};

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;
pub mod scalar;

/// Largest token count of the skinny path (`skinny_rows`).
pub const SKINNY_MAX_TOKENS: usize = 4;

/// Copies `bytes` bytes from `src` to `dst` as f32 bit patterns, which the
/// vector loads and stores move unchanged (no NaN quieting), so any dtype
/// can be copied. The part after the last full vector is copied as bytes.
#[inline(always)]
unsafe fn copy_row<S: SimdF32>(s: S, src: *const u8, dst: *mut u8, bytes: usize) {
    let l = S::LANES;
    let words = bytes / 4;
    let (x, y) = (src.cast::<f32>(), dst.cast::<f32>());
    let mut i = 0;
    // SAFETY: every vector access covers words below `words`,
    // and the byte tail ends at `bytes`, inside the rows the caller provides.
    unsafe {
        while i + 4 * l <= words {
            let v0 = s.load(x.add(i));
            let v1 = s.load(x.add(i + l));
            let v2 = s.load(x.add(i + 2 * l));
            let v3 = s.load(x.add(i + 3 * l));
            s.store(y.add(i), v0);
            s.store(y.add(i + l), v1);
            s.store(y.add(i + 2 * l), v2);
            s.store(y.add(i + 3 * l), v3);
            i += 4 * l;
        }
        while i + l <= words {
            s.store(y.add(i), s.load(x.add(i)));
            i += l;
        }
        // The tail goes byte-wise: 16-bit rows are only 2-byte aligned, and
        // some `load_tail` implementations copy through typed f32 pointers.
        std::ptr::copy_nonoverlapping(src.add(i * 4), dst.add(i * 4), bytes - i * 4);
    }
}

/// Writes `bytes` zero bytes to `dst`.
#[inline(always)]
unsafe fn zero_row<S: SimdF32>(s: S, dst: *mut u8, bytes: usize) {
    let l = S::LANES;
    let words = bytes / 4;
    let y = dst.cast::<f32>();
    let zero = s.splat(0.0);
    let mut i = 0;
    // SAFETY: stores stay inside dst[0 .. bytes], which the caller provides.
    unsafe {
        while i + l <= words {
            s.store(y.add(i), zero);
            i += l;
        }
        std::ptr::write_bytes(dst.add(i * 4), 0, bytes - i * 4);
    }
}

/// Gathers token rows into expert-contiguous order: for each slot `i` in
/// `0 .. slots`, row `slot_token[i]` of `src` (rows `src_stride` bytes
/// apart) is copied to row `i` of `dst` (rows `dst_stride` bytes apart).
/// A negative `slot_token[i]` is a padding slot, and its row is zeroed.
/// Rows are `row_bytes` bytes of any element type; nothing is converted.
///
/// # Safety
///
/// `slot_token[0 .. slots]` is readable. Every non-negative entry `t`
/// addresses a readable row `src + t * src_stride .. + row_bytes`, and
/// `dst + i * dst_stride .. + row_bytes` is writable for every `i < slots`.
/// The destination rows overlap neither each other nor any source row. No
/// alignment is needed.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub unsafe fn gather_rows<S: SimdF32>(
    s: S,
    src: *const u8,
    src_stride: usize,
    slot_token: *const i64,
    slots: usize,
    dst: *mut u8,
    dst_stride: usize,
    row_bytes: usize,
) {
    debug_assert!(slots <= 1 || dst_stride >= row_bytes);
    for i in 0..slots {
        // SAFETY: the caller's contract covers slot_token[i], the source row
        // of every non-negative entry and destination row i.
        unsafe {
            let out = dst.add(i * dst_stride);
            let t = *slot_token.add(i);
            if t < 0 {
                zero_row(s, out, row_bytes);
            } else {
                copy_row(s, src.add(t as usize * src_stride), out, row_bytes);
            }
        }
    }
}

/// Combines expert outputs in token order: for each token `t < tokens`,
/// `out[t, :] (+)= Σ_j weights[t*k + j] · y[slots[t*k + j], :]` over
/// `d` columns, with `+=` when `accumulate` and `=` otherwise. The sum runs
/// over j in increasing order with one FMA per term, starting from 0 (or
/// from the old `out` when accumulating), so the bits depend only on the
/// inputs, never on how tokens are split over threads. A negative slot is
/// a dropped choice and contributes nothing; a weight of 0 still multiplies
/// its row, so NaN or inf there propagates. A token whose choices are all
/// dropped gets 0 (or keeps its old value).
///
/// # Safety
///
/// `slots` and `weights` hold `tokens * k` readable entries. Each
/// non-negative slot `s` addresses a readable row `y + s * y_stride ..
/// + d`, and `out + t * out_stride .. + d` is writable (and readable when
/// accumulating) for `t < tokens`. `out` rows overlap no `y` row and no
/// other `out` row.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub unsafe fn combine_rows<S: SimdF32>(
    s: S,
    y: *const f32,
    y_stride: usize,
    slots: *const i64,
    weights: *const f32,
    k: usize,
    tokens: usize,
    out: *mut f32,
    out_stride: usize,
    d: usize,
    accumulate: bool,
) {
    let l = S::LANES;
    for t in 0..tokens {
        // SAFETY: the caller's contract covers the k slots and
        // weights of token t, every row they name and output row t; column
        // accesses stay below d.
        unsafe {
            let o = out.add(t * out_stride);
            let ts = slots.add(t * k);
            let tw = weights.add(t * k);
            let mut c = 0;
            while c + 4 * l <= d {
                let (mut a0, mut a1, mut a2, mut a3) = if accumulate {
                    (s.load(o.add(c)), s.load(o.add(c + l)), s.load(o.add(c + 2 * l)), s.load(o.add(c + 3 * l)))
                } else {
                    let z = s.splat(0.0);
                    (z, z, z, z)
                };
                for j in 0..k {
                    let slot = *ts.add(j);
                    if slot < 0 {
                        continue;
                    }
                    let row = y.add(slot as usize * y_stride + c);
                    let w = s.splat(*tw.add(j));
                    a0 = s.fma(w, s.load(row), a0);
                    a1 = s.fma(w, s.load(row.add(l)), a1);
                    a2 = s.fma(w, s.load(row.add(2 * l)), a2);
                    a3 = s.fma(w, s.load(row.add(3 * l)), a3);
                }
                s.store(o.add(c), a0);
                s.store(o.add(c + l), a1);
                s.store(o.add(c + 2 * l), a2);
                s.store(o.add(c + 3 * l), a3);
                c += 4 * l;
            }
            while c < d {
                let n = (d - c).min(l);
                let mut a = if !accumulate {
                    s.splat(0.0)
                } else if n == l {
                    s.load(o.add(c))
                } else {
                    s.load_tail(o.add(c), n, 0.0)
                };
                for j in 0..k {
                    let slot = *ts.add(j);
                    if slot < 0 {
                        continue;
                    }
                    let row = y.add(slot as usize * y_stride + c);
                    let v = if n == l { s.load(row) } else { s.load_tail(row, n, 0.0) };
                    a = s.fma(s.splat(*tw.add(j)), v, a);
                }
                if n == l {
                    s.store(o.add(c), a);
                } else {
                    s.store_tail(o.add(c), n, a);
                }
                c += n;
            }
        }
    }
}

/// Computes the SwiGLU activation `out[i] = silu(gate[i]) · up[i]` with
/// `silu(g) = g / (1 + e^-g)`, over `n` elements. Large negative `g` gives
/// -0 or 0 (e^-g overflows to +inf), large positive `g` gives `g`, NaN
/// propagates.
///
/// # Safety
///
/// `gate[0 .. n]` and `up[0 .. n]` are readable and `out[0 .. n]` writable.
/// `out` may equal `gate` or `up` but must not otherwise overlap them.
#[inline(always)]
pub unsafe fn swiglu<S: SimdF32>(s: S, gate: *const f32, up: *const f32, out: *mut f32, n: usize) {
    // A closure would not inherit the entry point's target features, so
    // its vector operations would become calls; a nested inline function
    // does.
    #[inline(always)]
    fn silu_mul<S: SimdF32>(s: S, g: S::V, u: S::V) -> S::V {
        let one = s.splat(1.0);
        s.mul(s.div(g, s.add(one, exp(s, s.sub(s.splat(0.0), g)))), u)
    }
    let l = S::LANES;
    let mut i = 0;
    // SAFETY: every access covers elements below n of the caller's rows.
    unsafe {
        while i + 2 * l <= n {
            let r0 = silu_mul(s, s.load(gate.add(i)), s.load(up.add(i)));
            let r1 = silu_mul(s, s.load(gate.add(i + l)), s.load(up.add(i + l)));
            s.store(out.add(i), r0);
            s.store(out.add(i + l), r1);
            i += 2 * l;
        }
        while i < n {
            let m = (n - i).min(l);
            if m == l {
                s.store(out.add(i), silu_mul(s, s.load(gate.add(i)), s.load(up.add(i))));
            } else {
                let r = silu_mul(s, s.load_tail(gate.add(i), m, 0.0), s.load_tail(up.add(i), m, 0.0));
                s.store_tail(out.add(i), m, r);
            }
            i += m;
        }
    }
}

/// Computes `y[i, j] = Σ_p x[i, p] · w[j, p]` for `N` tokens, `rows` output
/// features and `depth` inputs: a product with a weight matrix stored
/// out-features by in-features (the PyTorch `Linear` layout), streaming
/// each weight row once for all tokens.
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
#[inline(always)]
unsafe fn skinny<S: SimdF32, const N: usize>(
    s: S,
    x: *const f32,
    x_stride: usize,
    w: *const f32,
    w_stride: usize,
    rows: usize,
    depth: usize,
    y: *mut f32,
    y_stride: usize,
) {
    let l = S::LANES;
    for j in 0..rows {
        let mut acc = [s.splat(0.0); N];
        let mut acc2 = [s.splat(0.0); N];
        // SAFETY: accesses stay inside weight row j, token
        // rows i < N at columns below depth, and y[i, j].
        unsafe {
            let wr = w.add(j * w_stride);
            let mut p = 0;
            while p + 2 * l <= depth {
                let w0 = s.load(wr.add(p));
                let w1 = s.load(wr.add(p + l));
                for i in 0..N {
                    let xr = x.add(i * x_stride + p);
                    acc[i] = s.fma(s.load(xr), w0, acc[i]);
                    acc2[i] = s.fma(s.load(xr.add(l)), w1, acc2[i]);
                }
                p += 2 * l;
            }
            while p < depth {
                let m = (depth - p).min(l);
                let wv = if m == l { s.load(wr.add(p)) } else { s.load_tail(wr.add(p), m, 0.0) };
                for i in 0..N {
                    let xr = x.add(i * x_stride + p);
                    let xv = if m == l { s.load(xr) } else { s.load_tail(xr, m, 0.0) };
                    acc[i] = s.fma(xv, wv, acc[i]);
                }
                p += m;
            }
            for (i, (&a, &b)) in acc.iter().zip(&acc2).enumerate() {
                *y.add(i * y_stride + j) = s.reduce_add(s.add(a, b));
            }
        }
    }
}

/// Computes `y = x · wᵀ` for `n <= SKINNY_MAX_TOKENS` token rows of
/// `depth` elements (`x_stride` apart) against `rows` weight rows of
/// `depth` elements (`w_stride` apart), writing `y[i, j]` at
/// `y + i * y_stride + j`. `n = 0` writes nothing.
///
/// # Safety
///
/// The `n` token rows and `rows` weight rows are readable over `depth`
/// elements, `y[i, 0 .. rows]` is writable for `i < n`, and `y` overlaps
/// neither input.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub unsafe fn skinny_rows<S: SimdF32>(
    s: S,
    x: *const f32,
    x_stride: usize,
    n: usize,
    w: *const f32,
    w_stride: usize,
    rows: usize,
    depth: usize,
    y: *mut f32,
    y_stride: usize,
) {
    debug_assert!(n <= SKINNY_MAX_TOKENS);
    // SAFETY: forwarded contract.
    unsafe {
        match n {
            0 => {}
            1 => skinny::<S, 1>(s, x, x_stride, w, w_stride, rows, depth, y, y_stride),
            2 => skinny::<S, 2>(s, x, x_stride, w, w_stride, rows, depth, y, y_stride),
            3 => skinny::<S, 3>(s, x, x_stride, w, w_stride, rows, depth, y, y_stride),
            _ => skinny::<S, 4>(s, x, x_stride, w, w_stride, rows, depth, y, y_stride),
        }
    }
}

/// Expands the entry points of the family for one instruction set.
macro_rules! moe_kernels {
    ($token:ty, [$($feature:literal),*], $gather:ident, $combine:ident, $swiglu:ident, $skinny:ident) => {
        /// Row gather; see [`gather_rows`](crate::moe::gather_rows).
        ///
        /// # Safety
        ///
        /// As for `gather_rows`, and the CPU runs this instruction set.
        $(#[target_feature(enable = $feature)])*
        #[allow(clippy::too_many_arguments)]
        pub unsafe fn $gather(
            src: *const u8,
            src_stride: usize,
            slot_token: *const i64,
            slots: usize,
            dst: *mut u8,
            dst_stride: usize,
            row_bytes: usize,
        ) {
            // SAFETY: the caller guarantees the ISA and the row contract.
            unsafe {
                crate::moe::gather_rows(
                    <$token>::new_unchecked(), src, src_stride, slot_token, slots, dst, dst_stride, row_bytes,
                )
            }
        }

        /// Weighted combine; see [`combine_rows`](crate::moe::combine_rows).
        ///
        /// # Safety
        ///
        /// As for `combine_rows`, and the CPU runs this instruction set.
        $(#[target_feature(enable = $feature)])*
        #[allow(clippy::too_many_arguments)]
        pub unsafe fn $combine(
            y: *const f32,
            y_stride: usize,
            slots: *const i64,
            weights: *const f32,
            k: usize,
            tokens: usize,
            out: *mut f32,
            out_stride: usize,
            d: usize,
            accumulate: bool,
        ) {
            // SAFETY: the caller guarantees the ISA and the row contract.
            unsafe {
                crate::moe::combine_rows(
                    <$token>::new_unchecked(), y, y_stride, slots, weights, k, tokens, out, out_stride, d, accumulate,
                )
            }
        }

        /// SwiGLU activation; see [`swiglu`](crate::moe::swiglu).
        ///
        /// # Safety
        ///
        /// As for `swiglu`, and the CPU runs this instruction set.
        $(#[target_feature(enable = $feature)])*
        pub unsafe fn $swiglu(gate: *const f32, up: *const f32, out: *mut f32, n: usize) {
            // SAFETY: the caller guarantees the ISA and the row contract.
            unsafe { crate::moe::swiglu(<$token>::new_unchecked(), gate, up, out, n) }
        }

        /// Skinny product with transposed weights; see
        /// [`skinny_rows`](crate::moe::skinny_rows).
        ///
        /// # Safety
        ///
        /// As for `skinny_rows`, and the CPU runs this instruction set.
        $(#[target_feature(enable = $feature)])*
        #[allow(clippy::too_many_arguments)]
        pub unsafe fn $skinny(
            x: *const f32,
            x_stride: usize,
            n: usize,
            w: *const f32,
            w_stride: usize,
            rows: usize,
            depth: usize,
            y: *mut f32,
            y_stride: usize,
        ) {
            // SAFETY: the caller guarantees the ISA and the row contract.
            unsafe {
                crate::moe::skinny_rows(<$token>::new_unchecked(), x, x_stride, n, w, w_stride, rows, depth, y, y_stride)
            }
        }
    };
}
use moe_kernels;
