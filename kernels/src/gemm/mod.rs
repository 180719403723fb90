//! GEMM microkernels: the register-blocked tile update of the packed
//! (BLIS-style) path and the unpacked kernels of the skinny path.
//!
//! The bodies are written once against [`SimdF32`] and instantiated per
//! instruction set by `gemm_kernels!` in the sibling files, which fix the
//! register tile `MR × NR` (`NR = NV · LANES`). Packing, cache blocking,
//! threading and argument checks live in the `mlak` crate's driver.
//!
//! Packed layouts (all f32, no alignment required):
//! - an A micro-panel contains `kc` columns of `MR` rows: element (i, p) of the
//!   tile's A is at `a[p * MR + i]`;
//! - a B micro-panel contains `kc` rows of `NR` columns: element (p, j) is at
//!   `b[p * NR + j]`.
//!
//! The packer fills rows `i >= m` and columns `j >= n` of an edge tile with
//! zeros, so the kernel always multiplies a full tile and only the store is
//! clipped to `m × n`.

use crate::attention::KvElem;
use crate::simd::{SimdF32, MAX_LANES};

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;
pub mod scalar;

/// Largest `MR · NR` of any tile, for the stack buffer of edge tiles.
pub const MAX_TILE: usize = 16 * 32;

/// Computes one `MR × NR` tile: `C = alpha · (A_panel · B_panel) + beta · C`
/// restricted to the top-left `m × n` corner, where the panels are packed
/// as described in the module documentation.
///
/// Units: `kc` counts depth steps, `rs_c` and `cs_c` are in elements (any
/// sign). With `beta == 0` the kernel never reads C, so NaN there is
/// overwritten. A full tile with `cs_c == 1` is updated with vector loads and
/// stores. An edge tile, or a tile with other strides, goes through a stack
/// buffer and touches only the `m × n` elements it owns.
///
/// # Safety
///
/// `a` addresses `kc · MR` and `b` `kc · NR` readable f32 (exactly these are
/// read: no over-read). `1 <= m <= MR`, `1 <= n <= NR`, and every
/// `c[i · rs_c + j · cs_c]` with `i < m`, `j < n` is writable, and readable
/// unless `beta == 0`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub unsafe fn tile<S: SimdF32, const MR: usize, const NV: usize>(
    s: S,
    kc: usize,
    alpha: f32,
    a: *const f32,
    b: *const f32,
    beta: f32,
    c: *mut f32,
    rs_c: isize,
    cs_c: isize,
    m: usize,
    n: usize,
) {
    let l = S::LANES;
    let nr = NV * l;
    debug_assert!(MR * nr <= MAX_TILE, "tile {MR}x{nr} exceeds MAX_TILE");
    debug_assert!((1..=MR).contains(&m) && (1..=nr).contains(&n), "edge {m}x{n} outside tile {MR}x{nr}");
    debug_assert!(kc == 0 || (!a.is_null() && !b.is_null()), "null packed panel");

    // alpha and beta wait in memory: held in registers across the loop,
    // they would push an accumulator of the 16-register AVX2 tile onto the
    // stack.
    let scalars = [alpha, beta];
    prefetch_tile(s, beta, c, rs_c, cs_c, m, n);
    let zero = s.splat(0.0);
    let mut acc = [[zero; NV]; MR];
    // Unrolled by 4 so that loop overhead stays off the front end, which
    // the 16-register AVX2 tile otherwise saturates.
    let mut p = 0;
    while p + 4 <= kc {
        // SAFETY: p + 3 < kc, inside both panels.
        unsafe {
            tile_step::<S, MR, NV>(s, &mut acc, a.add(p * MR), b.add(p * nr));
            tile_step::<S, MR, NV>(s, &mut acc, a.add((p + 1) * MR), b.add((p + 1) * nr));
            tile_step::<S, MR, NV>(s, &mut acc, a.add((p + 2) * MR), b.add((p + 2) * nr));
            tile_step::<S, MR, NV>(s, &mut acc, a.add((p + 3) * MR), b.add((p + 3) * nr));
        }
        p += 4;
    }
    while p < kc {
        // SAFETY: p < kc, inside both panels.
        unsafe { tile_step::<S, MR, NV>(s, &mut acc, a.add(p * MR), b.add(p * nr)) };
        p += 1;
    }

    // SAFETY: both reads are of a live local array.
    let (alpha, beta) = unsafe { (core::ptr::read_volatile(&scalars[0]), core::ptr::read_volatile(&scalars[1])) };
    // SAFETY: forwarded C contract.
    unsafe { store_tile::<S, MR, NV>(s, &acc, alpha, beta, c, rs_c, cs_c, m, n) }
}

/// Prefetches the first and last element of each of the `m` rows of a C
/// tile unless `beta == 0`. The tile kernels read C only after their depth
/// loop, so asking for its lines first hides the miss behind the loop.
/// Prefetching never faults, so any pointer is accepted.
#[inline(always)]
pub fn prefetch_tile<S: SimdF32>(s: S, beta: f32, c: *const f32, rs_c: isize, cs_c: isize, m: usize, n: usize) {
    if beta == 0.0 {
        return;
    }
    for i in 0..m {
        let row = c.wrapping_offset(i as isize * rs_c);
        s.prefetch(row.cast());
        s.prefetch(row.wrapping_offset((n as isize - 1) * cs_c).cast());
    }
}

/// Writes `C = alpha · acc + beta · C` for the top-left `m × n` corner of an
/// `MR × NR` accumulator tile; the store half of [`tile`], shared with the
/// bf16 tile kernel. With `beta == 0`, C is never read.
///
/// # Safety
///
/// As for the C part of [`tile`]'s contract.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub unsafe fn store_tile<S: SimdF32, const MR: usize, const NV: usize>(
    s: S,
    acc: &[[S::V; NV]; MR],
    alpha: f32,
    beta: f32,
    c: *mut f32,
    rs_c: isize,
    cs_c: isize,
    m: usize,
    n: usize,
) {
    let l = S::LANES;
    let nr = NV * l;
    let va = s.splat(alpha);
    if m == MR && n == nr && cs_c == 1 {
        for (i, row) in acc.iter().enumerate() {
            // SAFETY: the tile is full and rows are contiguous, so row i
            // covers c[i · rs_c .. i · rs_c + NR], all owned by the tile.
            unsafe {
                let ci = c.offset(i as isize * rs_c);
                for (v, &x) in row.iter().enumerate() {
                    let p = ci.add(v * l);
                    let out = if beta == 0.0 {
                        s.mul(va, x)
                    } else {
                        s.fma(va, x, s.mul(s.splat(beta), s.load(p)))
                    };
                    s.store(p, out);
                }
            }
        }
        return;
    }

    let mut buf = [0.0f32; MAX_TILE];
    for (i, row) in acc.iter().enumerate() {
        for (v, &x) in row.iter().enumerate() {
            // SAFETY: i · nr + v · l + l <= MR · NR <= MAX_TILE.
            unsafe { s.store(buf.as_mut_ptr().add(i * nr + v * l), x) };
        }
    }
    for i in 0..m {
        for j in 0..n {
            let x = alpha * buf[i * nr + j];
            // SAFETY: i < m and j < n, so the element is owned by the tile.
            unsafe {
                let p = c.offset(i as isize * rs_c + j as isize * cs_c);
                *p = if beta == 0.0 { x } else { x + beta * *p };
            }
        }
    }
}

/// One depth step of [`tile`]: the rank-1 update of the accumulators with
/// the `MR` values at `a` and the `NV · LANES` values at `b`.
///
/// # Safety
///
/// `a[0 .. MR]` and `b[0 .. NV · LANES]` are readable.
#[inline(always)]
unsafe fn tile_step<S: SimdF32, const MR: usize, const NV: usize>(
    s: S,
    acc: &mut [[S::V; NV]; MR],
    a: *const f32,
    b: *const f32,
) {
    let zero = s.splat(0.0);
    let mut bv = [zero; NV];
    // SAFETY: the caller guarantees both ranges are readable.
    unsafe {
        for (v, slot) in bv.iter_mut().enumerate() {
            *slot = s.load(b.add(v * S::LANES));
        }
        for (i, row) in acc.iter_mut().enumerate() {
            let ai = s.splat(*a.add(i));
            for (v, lane) in row.iter_mut().enumerate() {
                *lane = s.fma(ai, bv[v], *lane);
            }
        }
    }
}

/// Rows of B per step of [`skinny_rows`], and the depth block of its A
/// layout.
pub const SKINNY_DEPTH_BLOCK: usize = 8;

/// Returns the number of f32 values of the A buffer that [`skinny_rows`]
/// reads for an m × k A: k rounded up to [`SKINNY_DEPTH_BLOCK`], times m.
pub const fn skinny_rows_a_len(m: usize, k: usize) -> usize {
    k.div_ceil(SKINNY_DEPTH_BLOCK) * SKINNY_DEPTH_BLOCK * m
}

/// Skinny product in "axpy" form, for B and C stored with contiguous rows:
/// `C[i, j] += Σ_p A[i, p] · B[p, j]` for `i < m`, `j < n`, where
/// `B[p, j]` is at `b[p * rs_b + j]` and `C[i, j]` at `c[i * rs_c + j]`.
/// B's element type `E` is f32, f16 or bf16, widened to f32 as it is
/// loaded, so half-precision B streams half the bytes.
///
/// A is packed in depth blocks of [`SKINNY_DEPTH_BLOCK`] (any scaling by
/// alpha already applied): `A[i, p]` is at `a[(p / 8) · 8m + i · 8 + p % 8]`,
/// and the last block is padded with zeros to a multiple of 8
/// ([`skinny_rows_a_len`] values in all). Each row's 8 values of a block
/// are then adjacent, so the step is a fixed run of 8 broadcasts and FMAs.
///
/// B is streamed once, 8 rows at a time, in blocks of `block_cols`
/// columns: long contiguous runs of each row, which the hardware
/// prefetcher follows. Each block of C is copied into the dense buffer
/// `block` (row stride `block_cols + SKINNY_BLOCK_PAD`), which the caller
/// sizes to stay in L2; the padding keeps rows of C that lie a multiple of
/// 4 KiB apart (n = 4096, say) out of one L1 set. Partial vectors use
/// masked tail loads and stores, so nothing past column `n` or row `k` of B
/// is read or written. C is read, so the caller applies beta (writing
/// zeros for beta = 0) before the call.
///
/// With `PAIRS`, a step covers `2 · LANES` columns through
/// [`KvElem::load_pairs`], which halves the loads and loop overhead per
/// byte of a 2-byte B. Where that load splits bf16 by parity, each group of
/// columns sits in `block` in the same order (even columns, then odd), and
/// the copies between C and `block` apply the permutation, so the loop
/// itself never shuffles lanes.
///
/// # Safety
///
/// `a` addresses `skinny_rows_a_len(m, k)` readable f32, and
/// `b[p * rs_b + j]` is readable for `p < k`, `j < n`. `c[i * rs_c + j]` is
/// readable and writable for `i < m`, `j < n`, and `block` is writable over
/// `m · (block_cols + SKINNY_BLOCK_PAD)` f32. None of them overlap.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub unsafe fn skinny_rows<S: SimdF32, E: KvElem, const PAIRS: bool>(
    s: S,
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    b: *const E,
    rs_b: usize,
    c: *mut f32,
    rs_c: usize,
    block: *mut f32,
    block_cols: usize,
) {
    const P: usize = SKINNY_DEPTH_BLOCK;
    debug_assert!(m >= 1 && block_cols >= 1, "empty skinny block: m = {m}, block_cols = {block_cols}");
    let l = S::LANES;
    let step = if PAIRS { 2 * l } else { l };
    let by_parity = PAIRS && E::PAIRS_BY_PARITY;
    let bs = block_cols + SKINNY_BLOCK_PAD;
    let mut j0 = 0;
    while j0 < n {
        let jw = (n - j0).min(block_cols);
        for i in 0..m {
            // SAFETY: row i of C is readable at columns j0 .. j0 + jw <= n,
            // and block row i has room for jw <= block_cols floats.
            unsafe { copy_block_row::<true>(c.add(i * rs_c + j0), block.add(i * bs), jw, step, by_parity) };
        }
        let mut p = 0;
        while p < k {
            let pb = (k - p).min(P);
            let a_block = a.wrapping_add(p * m);
            let b_rows = b.wrapping_add(p * rs_b + j0);
            // Full steps of a full depth block take the branch-free loop;
            // the rest of the block, and a short last depth block, the
            // edge steps.
            let full = if pb == P { jw / step * step } else { 0 };
            // SAFETY: B rows p .. p + pb are read at columns j0 .. j0 + jw
            // <= n only, the block at rows i < m and columns below jw, and
            // A inside block p / 8.
            unsafe {
                if full > 0 {
                    if m == 1 {
                        rows_full_steps_m1::<S, E, PAIRS>(s, a_block, b_rows, rs_b, block, full);
                    } else {
                        rows_full_steps::<S, E, PAIRS>(s, m, a_block, b_rows, rs_b, block, bs, full);
                    }
                }
                let mut jv = full;
                while jv < jw {
                    let nl = (jw - jv).min(step);
                    rows_edge_step::<S, E, PAIRS>(s, m, pb, nl, a_block, b_rows.add(jv), rs_b, block.add(jv), bs);
                    jv += step;
                }
            }
            p += pb;
        }
        for i in 0..m {
            // SAFETY: as for the copy in, in the other direction.
            unsafe { copy_block_row::<false>(c.add(i * rs_c + j0), block.add(i * bs), jw, step, by_parity) };
        }
        j0 += jw;
    }
}

/// Loads one full step of [`skinny_rows`]: `step` columns of the 8 rows of
/// B from `row0` (row stride `rs_b`), and requests the same columns of the
/// next 8 rows into L2.
///
/// # Safety
///
/// `row0 + q · rs_b .. + step` is readable for `q < 8`.
#[inline(always)]
unsafe fn load_rows_step<S: SimdF32, E: KvElem, const PAIRS: bool>(
    s: S,
    row0: *const E,
    rs_b: usize,
) -> [[S::V; 2]; SKINNY_DEPTH_BLOCK] {
    const P: usize = SKINNY_DEPTH_BLOCK;
    let step = if PAIRS { 2 * S::LANES } else { S::LANES };
    // One L2 request per 64-byte line of each row's step, and at least one.
    let lines = (step * core::mem::size_of::<E>()).div_ceil(64);
    let zero = s.splat(0.0);
    let mut bv = [[zero; 2]; P];
    for (q, slot) in bv.iter_mut().enumerate() {
        // SAFETY: the caller guarantees the step of row q is readable.
        unsafe {
            let row = row0.add(q * rs_b);
            *slot = if PAIRS {
                let (x, y) = E::load_pairs(s, row);
                [x, y]
            } else {
                [E::load(s, row), zero]
            };
        }
        // The hardware prefetcher follows the rows being read but not the
        // next depth block's rows, which start only after a whole block of
        // columns. Requesting those into L2 one step early hides that miss.
        // Prefetching never faults.
        let ahead = row0.wrapping_add((q + P) * rs_b).cast::<u8>();
        for line in 0..lines {
            s.prefetch_l2(ahead.wrapping_add(line * 64));
        }
    }
    bv
}

/// Runs the full steps of one full depth block of [`skinny_rows`] over
/// columns `0 .. cols` (a multiple of the step) for `m` rows of C.
///
/// # Safety
///
/// As for [`load_rows_step`] over those columns, with `a[0 .. 8m]`
/// readable and `block + i · bs .. + cols` readable and writable for
/// `i < m`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_full_steps<S: SimdF32, E: KvElem, const PAIRS: bool>(
    s: S,
    m: usize,
    a: *const f32,
    b_rows: *const E,
    rs_b: usize,
    block: *mut f32,
    bs: usize,
    cols: usize,
) {
    let l = S::LANES;
    let step = if PAIRS { 2 * l } else { l };
    let mut jv = 0;
    while jv < cols {
        // SAFETY: forwarded contract, at columns jv .. jv + step <= cols.
        unsafe {
            let bv = load_rows_step::<S, E, PAIRS>(s, b_rows.add(jv), rs_b);
            axpy_rows::<S, PAIRS, true>(s, m, &bv, a, block.add(jv), bs, [l, l]);
        }
        jv += step;
    }
}

/// Runs [`rows_full_steps`] for one row of C, with its 8 values of A kept
/// in registers across the columns. The compiler cannot arrange that
/// itself because stores to the block might alias A.
///
/// # Safety
///
/// As for [`rows_full_steps`] with `m = 1`.
#[inline(always)]
// `v` picks the vector within every row of `bv`, not an element of `bv`.
#[allow(clippy::needless_range_loop)]
unsafe fn rows_full_steps_m1<S: SimdF32, E: KvElem, const PAIRS: bool>(
    s: S,
    a: *const f32,
    b_rows: *const E,
    rs_b: usize,
    block: *mut f32,
    cols: usize,
) {
    const P: usize = SKINNY_DEPTH_BLOCK;
    let l = S::LANES;
    let step = if PAIRS { 2 * l } else { l };
    let vectors = if PAIRS { 2 } else { 1 };
    let mut av = [s.splat(0.0); P];
    for (q, slot) in av.iter_mut().enumerate() {
        // SAFETY: a[0 .. 8] is readable by the caller's contract.
        *slot = s.splat(unsafe { *a.add(q) });
    }
    let mut jv = 0;
    while jv < cols {
        // SAFETY: forwarded contract, at columns jv .. jv + step <= cols.
        unsafe {
            let bv = load_rows_step::<S, E, PAIRS>(s, b_rows.add(jv), rs_b);
            for v in 0..vectors {
                let cv = block.add(jv + v * l);
                let mut even = s.load(cv);
                let mut odd = s.mul(av[1], bv[1][v]);
                for q in (2..P).step_by(2) {
                    even = s.fma(av[q], bv[q][v], even);
                    odd = s.fma(av[q + 1], bv[q + 1][v], odd);
                }
                even = s.fma(av[0], bv[0][v], even);
                s.store(cv, s.add(even, odd));
            }
        }
        jv += step;
    }
}

/// Adds one edge step of [`skinny_rows`] into `m` rows of the block at
/// `c`: `nl <= step` columns of `pb <= 8` rows of B from `row0`, read with
/// masked tails.
///
/// # Safety
///
/// `row0 + q · rs_b .. + nl` is readable for `q < pb`, `a[0 .. 8m]` is
/// readable, and `c + i · bs .. + nl` is readable and writable for `i < m`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_edge_step<S: SimdF32, E: KvElem, const PAIRS: bool>(
    s: S,
    m: usize,
    pb: usize,
    nl: usize,
    a: *const f32,
    row0: *const E,
    rs_b: usize,
    c: *mut f32,
    bs: usize,
) {
    let l = S::LANES;
    let step = if PAIRS { 2 * l } else { l };
    // Lanes of the first vector; the second contains the rest.
    let first = if PAIRS && E::PAIRS_BY_PARITY { nl.div_ceil(2) } else { nl.min(l) };
    let zero = s.splat(0.0);
    let mut bv = [[zero; 2]; SKINNY_DEPTH_BLOCK];
    // SAFETY: forwarded contract.
    unsafe {
        for (q, slot) in bv.iter_mut().enumerate().take(pb) {
            let row = row0.add(q * rs_b);
            *slot = if PAIRS { load_pairs_part(s, row, nl) } else { [load_part_elem(s, row, nl), zero] };
        }
        if nl == step {
            axpy_rows::<S, PAIRS, true>(s, m, &bv, a, c, bs, [l, l]);
        } else {
            axpy_rows::<S, PAIRS, false>(s, m, &bv, a, c, bs, [first, nl - first]);
        }
    }
}

/// Copies `jw` columns of one row between C and [`skinny_rows`]'s block:
/// into the block when `IN`, out of it otherwise. With `by_parity`, each
/// group of `step` columns (the last one possibly shorter) sits in the
/// block as its even columns followed by its odd ones.
///
/// # Safety
///
/// `c .. c + jw` and `block .. block + jw` are valid for the copy's
/// direction and do not overlap.
#[inline(always)]
pub(crate) unsafe fn copy_block_row<const IN: bool>(c: *mut f32, block: *mut f32, jw: usize, step: usize, by_parity: bool) {
    // SAFETY: every index below is under jw; the ranges are the caller's.
    unsafe {
        if !by_parity {
            if IN {
                core::ptr::copy_nonoverlapping(c, block, jw);
            } else {
                core::ptr::copy_nonoverlapping(block, c, jw);
            }
            return;
        }
        let mut g0 = 0;
        while g0 < jw {
            let g = (jw - g0).min(step);
            let odd_start = g0 + g.div_ceil(2);
            for t in 0..g {
                let slot = if t % 2 == 0 { g0 + t / 2 } else { odd_start + t / 2 };
                if IN {
                    *block.add(slot) = *c.add(g0 + t);
                } else {
                    *c.add(g0 + t) = *block.add(slot);
                }
            }
            g0 += step;
        }
    }
}

/// Adds one step of columns of [`skinny_rows`]: `C[i, ·] += Σ_q
/// a[i · 8 + q] · bv[q]` for `i < m`, with row i of C at `c + i · rs_c`.
/// The step's columns are `lanes[0]` lanes of the first vector of each
/// `bv[q]`, stored from `c`, then, with `PAIRS`, `lanes[1]` lanes of the
/// second, stored right after them. `FULL` means both are `LANES`. Entries
/// of `bv` past the depth are zero, and so are the padded values of A.
///
/// # Safety
///
/// `a[0 .. 8m]` is readable, and `c + i · rs_c` is readable and writable
/// over `lanes[0] + lanes[1]` values (`lanes[0]` without `PAIRS`) for
/// `i < m`.
#[inline(always)]
unsafe fn axpy_rows<S: SimdF32, const PAIRS: bool, const FULL: bool>(
    s: S,
    m: usize,
    bv: &[[S::V; 2]; SKINNY_DEPTH_BLOCK],
    a: *const f32,
    c: *mut f32,
    rs_c: usize,
    lanes: [usize; 2],
) {
    let vectors = if PAIRS { 2 } else { 1 };
    // SAFETY: forwarded contract.
    unsafe {
        for i in 0..m {
            let ci = c.add(i * rs_c);
            let ai = a.add(i * SKINNY_DEPTH_BLOCK);
            let cv = [ci, ci.add(lanes[0])];
            // Two partial sums per vector halve the dependent FMA chain.
            let mut even = [s.splat(0.0); 2];
            let mut odd = [s.splat(0.0); 2];
            for v in 0..vectors {
                even[v] = if FULL || lanes[v] == S::LANES { s.load(cv[v]) } else { s.load_tail(cv[v], lanes[v], 0.0) };
            }
            for q in (0..SKINNY_DEPTH_BLOCK).step_by(2) {
                let (a0, a1) = (s.splat(*ai.add(q)), s.splat(*ai.add(q + 1)));
                for v in 0..vectors {
                    even[v] = s.fma(a0, bv[q][v], even[v]);
                    odd[v] = s.fma(a1, bv[q + 1][v], odd[v]);
                }
            }
            for v in 0..vectors {
                let out = s.add(even[v], odd[v]);
                if FULL || lanes[v] == S::LANES {
                    s.store(cv[v], out);
                } else {
                    s.store_tail(cv[v], lanes[v], out);
                }
            }
        }
    }
}

/// Loads `nl <= LANES` elements of type `E` from `p` as f32, the rest of
/// the lanes 0.
///
/// # Safety
///
/// `p .. p + nl` is readable.
#[inline(always)]
unsafe fn load_part_elem<S: SimdF32, E: KvElem>(s: S, p: *const E, nl: usize) -> S::V {
    // SAFETY: forwarded contract.
    unsafe {
        if nl == S::LANES {
            E::load(s, p)
        } else {
            E::load_tail(s, p, nl)
        }
    }
}

/// Loads `nl <= 2 · LANES` elements of type `E` from `p` as the two
/// vectors of [`KvElem::load_pairs`], with the lanes of elements past `nl`
/// set to 0. Never reads past `p + nl`.
///
/// # Safety
///
/// `p .. p + nl` is readable.
#[inline(always)]
unsafe fn load_pairs_part<S: SimdF32, E: KvElem>(s: S, p: *const E, nl: usize) -> [S::V; 2] {
    debug_assert!(nl <= 2 * S::LANES, "{nl} elements exceed two vectors");
    // SAFETY: forwarded contract; `buf` has room for 2 · MAX_LANES >= nl
    // elements.
    unsafe {
        let (x, y) = if nl == 2 * S::LANES {
            E::load_pairs(s, p)
        } else {
            let mut buf = [E::ZERO; 2 * MAX_LANES];
            core::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), nl);
            E::load_pairs(s, buf.as_ptr())
        };
        [x, y]
    }
}

/// Padding of each row of [`skinny_rows`]'s block of C, in floats: one
/// cache line, so consecutive rows start in different L1 sets.
pub const SKINNY_BLOCK_PAD: usize = 16;

/// Skinny product in "dot" form, for B stored with contiguous columns (B's
/// element type `E` is f32, f16 or bf16, widened to f32 as it is loaded):
/// `C[i, j] = alpha · Σ_p A[i, p] · B[p, j] + beta · C[i, j]` for `i < m`,
/// `j < n`, where A is packed row-major (`a[i * k + p]`), `B[p, j]` is at
/// `b[j * cs_b + p]` and `C[i, j]` at `c[i * rs_c + j * cs_c]`.
///
/// Each output is a dot product over k, vectorized along k with a masked
/// tail, in blocks of `R` rows by 4 columns. Each block of 4 columns of B
/// is read once from memory and stays in L1 while every row block of A
/// passes it, so A (`m · k` floats) should fit in L2. With `beta == 0`, C is
/// never read.
///
/// # Safety
///
/// `a` addresses `m · k` readable f32; `b[j * cs_b + p]` is readable for
/// `p < k`, `j < n`; `c[i * rs_c + j * cs_c]` is writable (readable unless
/// `beta == 0`) for `i < m`, `j < n`; C overlaps neither A nor B.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub unsafe fn skinny_dots<S: SimdF32, E: KvElem, const R: usize>(
    s: S,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: *const f32,
    b: *const E,
    cs_b: usize,
    beta: f32,
    c: *mut f32,
    rs_c: isize,
    cs_c: isize,
) {
    const CJ: usize = 4;
    debug_assert!(m >= 1 && n >= 1, "empty skinny product {m}x{n}");
    let mut j0 = 0;
    while j0 < n {
        // Columns past the edge alias the last valid one, so the loop body
        // stays branch-free; their results are discarded.
        let mut cols = [0usize; CJ];
        for (q, slot) in cols.iter_mut().enumerate() {
            *slot = (j0 + q).min(n - 1);
        }
        // Full blocks of R rows, then the rows left over one at a time, so
        // no FMA is spent on a row past the edge.
        let full = m / R * R;
        let mut i0 = 0;
        while i0 < full {
            // SAFETY: rows i0 .. i0 + R and the columns in `cols` are inside
            // the product, by the caller's contract.
            unsafe { dots_tile::<S, E, R, CJ>(s, i0 == 0, i0, cols, j0, n, k, alpha, a, b, cs_b, beta, c, rs_c, cs_c) };
            i0 += R;
        }
        while i0 < m {
            // SAFETY: as above, for row i0.
            unsafe { dots_tile::<S, E, 1, CJ>(s, i0 == 0, i0, cols, j0, n, k, alpha, a, b, cs_b, beta, c, rs_c, cs_c) };
            i0 += 1;
        }
        j0 += CJ;
    }
}

/// Computes one block of [`skinny_dots`]: the R × CJ dot products of rows
/// `i0 .. i0 + R` of A with the columns `cols` of B, stored at columns
/// `j0 .. min(j0 + CJ, n)` of C. Entries of `cols` past the edge repeat the
/// last valid column, and their results are discarded.
///
/// # Safety
///
/// As for [`skinny_dots`], with rows `i0 .. i0 + R` inside A and every
/// entry of `cols` a valid column of B.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn dots_tile<S: SimdF32, E: KvElem, const R: usize, const CJ: usize>(
    s: S,
    prefetch_next: bool,
    i0: usize,
    cols: [usize; CJ],
    j0: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: *const f32,
    b: *const E,
    cs_b: usize,
    beta: f32,
    c: *mut f32,
    rs_c: isize,
    cs_c: isize,
) {
    let l = S::LANES;
    let zero = s.splat(0.0);
    let mut acc = [[zero; CJ]; R];
    // Vector steps per 64-byte line of a column of B.
    let steps_per_line = (64 / (l * core::mem::size_of::<E>())).max(1);
    let mut p = 0;
    let mut it = 0;
    // SAFETY: every load reads k-range p .. p + l (p + l <= k) or the tail
    // p .. k of a valid row of A or column of B.
    unsafe {
        while p + l <= k {
            let mut bv = [zero; CJ];
            for (q, slot) in bv.iter_mut().enumerate() {
                *slot = E::load(s, b.add(cols[q] * cs_b + p));
            }
            // The hardware prefetcher starts late on each new run of CJ
            // columns, which at 2 bytes per element is only a few KiB
            // long. Requesting the next run's lines into L2 one block of
            // columns early hides that start. The first row block of a
            // column block issues the requests; prefetching never faults.
            if prefetch_next && it % steps_per_line == 0 {
                for &col in &cols {
                    s.prefetch_l2(b.wrapping_add((col + CJ) * cs_b + p).cast());
                }
            }
            it += 1;
            for (r, row) in acc.iter_mut().enumerate() {
                let av = s.load(a.add((i0 + r) * k + p));
                for (q, lane) in row.iter_mut().enumerate() {
                    *lane = s.fma(av, bv[q], *lane);
                }
            }
            p += l;
        }
        if p < k {
            let t = k - p;
            let mut bv = [zero; CJ];
            for (q, slot) in bv.iter_mut().enumerate() {
                *slot = E::load_tail(s, b.add(cols[q] * cs_b + p), t);
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let av = s.load_tail(a.add((i0 + r) * k + p), t, 0.0);
                for (q, lane) in row.iter_mut().enumerate() {
                    *lane = s.fma(av, bv[q], *lane);
                }
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (q, &x) in row.iter().enumerate() {
            if j0 + q >= n {
                break;
            }
            let dot = alpha * s.reduce_add(x);
            // SAFETY: (i0 + r, j0 + q) is inside the m × n output.
            unsafe {
                let p = c.offset((i0 + r) as isize * rs_c + (j0 + q) as isize * cs_c);
                *p = if beta == 0.0 { dot } else { dot + beta * *p };
            }
        }
    }
}

/// Expands the GEMM entry points of one instruction set: the packed tile
/// kernel `$tile` with register tile `$mr × ($nv · LANES)`, and the two
/// skinny kernels for each element type of B.
macro_rules! gemm_kernels {
    (
        $token:ty, [$($feature:literal),*], tile = $mr:literal x $nv:literal,
        dot_rows = $dot_rows:literal, row_pairs = $row_pairs:literal, $tile:ident, $rows:ident, $dots:ident,
        $rows_f16:ident, $rows_bf16:ident, $dots_f16:ident, $dots_bf16:ident
    ) => {
        /// Register tile height (rows of A per micro-panel).
        pub const MR: usize = $mr;
        /// Register tile width (columns of B per micro-panel).
        pub const NR: usize = $nv * <$token as crate::simd::SimdF32>::LANES;

        /// Packed tile update; see [`tile`](crate::gemm::tile) for the
        /// operation, the packed layouts, the edge rule and the C contract.
        /// No alignment is required and nothing outside the panels is read.
        ///
        /// # Safety
        ///
        /// As for `tile`, and the CPU runs this instruction set.
        $(#[target_feature(enable = $feature)])*
        #[allow(clippy::too_many_arguments)]
        pub unsafe fn $tile(
            kc: usize,
            alpha: f32,
            a: *const f32,
            b: *const f32,
            beta: f32,
            c: *mut f32,
            rs_c: isize,
            cs_c: isize,
            m: usize,
            n: usize,
        ) {
            // SAFETY: the caller guarantees the ISA and the tile contract.
            unsafe {
                crate::gemm::tile::<_, $mr, $nv>(<$token>::new_unchecked(), kc, alpha, a, b, beta, c, rs_c, cs_c, m, n)
            }
        }

        crate::gemm::skinny_rows_entry!(
            $token, [$($feature),*], $rows, false, f32, f32,
            "Skinny accumulation with row-contiguous f32 B; see [`skinny_rows`](crate::gemm::skinny_rows)."
        );
        crate::gemm::skinny_rows_entry!(
            $token, [$($feature),*], $rows_f16, $row_pairs, u16, crate::attention::F16Bits,
            "As the f32 skinny kernel, with B in IEEE binary16 bit patterns widened on load; `rs_b` counts f16 elements."
        );
        crate::gemm::skinny_rows_entry!(
            $token, [$($feature),*], $rows_bf16, $row_pairs, u16, crate::attention::Bf16Bits,
            "As the f32 skinny kernel, with B in bfloat16 bit patterns widened on load; `rs_b` counts bf16 elements."
        );

        crate::gemm::skinny_dots_entry!(
            $token, [$($feature),*], $dots, $dot_rows, f32, f32,
            "Skinny product with column-contiguous f32 B; see [`skinny_dots`](crate::gemm::skinny_dots)."
        );
        crate::gemm::skinny_dots_entry!(
            $token, [$($feature),*], $dots_f16, $dot_rows, u16, crate::attention::F16Bits,
            "As the f32 dot-form kernel, with B in IEEE binary16 bit patterns widened on load; `cs_b` counts f16 elements."
        );
        crate::gemm::skinny_dots_entry!(
            $token, [$($feature),*], $dots_bf16, $dot_rows, u16, crate::attention::Bf16Bits,
            "As the f32 dot-form kernel, with B in bfloat16 bit patterns widened on load; `cs_b` counts bf16 elements."
        );
    };
}
pub(crate) use gemm_kernels;

/// Expands one skinny-rows entry point whose B elements are `$bits` in the
/// C ABI and `$elem` (a [`KvElem`] with the same layout) in the body.
macro_rules! skinny_rows_entry {
    ($token:ty, [$($feature:literal),*], $name:ident, $pairs:literal, $bits:ty, $elem:ty, $doc:literal) => {
        #[doc = $doc]
        ///
        /// # Safety
        ///
        /// As for `skinny_rows`, and the CPU runs this instruction set.
        $(#[target_feature(enable = $feature)])*
        #[allow(clippy::too_many_arguments)]
        pub unsafe fn $name(
            m: usize,
            n: usize,
            k: usize,
            a: *const f32,
            b: *const $bits,
            rs_b: usize,
            c: *mut f32,
            rs_c: usize,
            block: *mut f32,
            block_cols: usize,
        ) {
            let b = b.cast::<$elem>();
            // SAFETY: the caller guarantees the ISA and the contract; `$elem`
            // has the layout of `$bits`.
            unsafe {
                // Pair steps only for one row: single-vector steps ran
                // faster for m = 2, 4 and 8 in alternating runs (AVX-512
                // on AMD Zen 4).
                if $pairs && m == 1 {
                    crate::gemm::skinny_rows::<_, _, true>(<$token>::new_unchecked(), m, n, k, a, b, rs_b, c, rs_c, block, block_cols)
                } else {
                    crate::gemm::skinny_rows::<_, _, false>(<$token>::new_unchecked(), m, n, k, a, b, rs_b, c, rs_c, block, block_cols)
                }
            }
        }
    };
}
pub(crate) use skinny_rows_entry;

/// Expands one dot-form entry point whose B elements are `$bits` in the
/// C ABI and `$elem` (a [`KvElem`] with the same layout) in the body.
macro_rules! skinny_dots_entry {
    ($token:ty, [$($feature:literal),*], $name:ident, $rows:literal, $bits:ty, $elem:ty, $doc:literal) => {
        #[doc = $doc]
        ///
        /// # Safety
        ///
        /// As for `skinny_dots`, and the CPU runs this instruction set.
        $(#[target_feature(enable = $feature)])*
        #[allow(clippy::too_many_arguments)]
        pub unsafe fn $name(
            m: usize,
            n: usize,
            k: usize,
            alpha: f32,
            a: *const f32,
            b: *const $bits,
            cs_b: usize,
            beta: f32,
            c: *mut f32,
            rs_c: isize,
            cs_c: isize,
        ) {
            let b = b.cast::<$elem>();
            // SAFETY: the caller guarantees the ISA and the contract; `$elem`
            // has the layout of `$bits`.
            unsafe {
                crate::gemm::skinny_dots::<_, _, $rows>(<$token>::new_unchecked(), m, n, k, alpha, a, b, cs_b, beta, c, rs_c, cs_c)
            }
        }
    };
}
pub(crate) use skinny_dots_entry;
