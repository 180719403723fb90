//! AVX-512 entry points of the GEMM family: a 12×32 register tile (24
//! accumulators of 16 lanes, plus 2 B vectors and broadcasts, in 32 zmm
//! registers).

use crate::simd::avx512::Avx512;
use core::arch::x86_64::*;

super::gemm_kernels!(
    Avx512,
    ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma", "f16c"],
    tile = 12 x 2,
    dot_rows = 4,
    row_pairs = true,
    f32_gemm_12x32_avx512,
    f32_gemm_skinny_rows_avx512,
    f32_gemm_skinny_dots_avx512,
    f16_gemm_skinny_rows_avx512,
    bf16_gemm_skinny_rows_avx512,
    f16_gemm_skinny_dots_avx512,
    bf16_gemm_skinny_dots_avx512
);

/// bf16 tile update with the AVX512_BF16 dot product (`vdpbf16ps`):
/// `C = alpha · (A_panel · B_panel) + beta · C` on a 12×32 tile, clipped to
/// the top-left `m × n` corner, with products of bf16 pairs accumulated in
/// f32.
///
/// Packed layouts, in bf16 elements (`u16` bit patterns), for `kp` depth
/// pairs (depth `2·kp`, the last pair zero-padded when the depth is odd):
/// - A: element (i, 2q + t) at `a[q * 24 + i * 2 + t]`, so one 32-bit
///   broadcast carries row i's pair q;
/// - B: element (2q + t, j) at `b[q * 64 + j * 2 + t]`, so one 512-bit load
///   carries the pairs of 16 columns.
///
/// Rows `i >= m` and columns `j >= n` of an edge tile are zero in the
/// panels and never stored. `vdpbf16ps` rounds to nearest even, treats
/// subnormal inputs and results as zero and ignores MXCSR. With
/// `beta == 0`, C is never read. No alignment is required and exactly
/// `kp · 24` and `kp · 64` elements are read.
///
/// # Safety
///
/// The CPU runs AVX-512 F/BW/DQ/VL and AVX512_BF16. `a` addresses
/// `kp · 24` and `b` `kp · 64` readable u16; `1 <= m <= 12`, `1 <= n <= 32`;
/// every `c[i · rs_c + j · cs_c]` with `i < m`, `j < n` is writable, and
/// readable unless `beta == 0`.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c,avx512bf16")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn bf16_gemm_12x32_avx512bf16(
    kp: usize,
    alpha: f32,
    a: *const u16,
    b: *const u16,
    beta: f32,
    c: *mut f32,
    rs_c: isize,
    cs_c: isize,
    m: usize,
    n: usize,
) {
    const MR_BF16: usize = 12;
    debug_assert!((1..=MR_BF16).contains(&m) && (1..=32).contains(&n), "edge {m}x{n} outside tile 12x32");
    debug_assert!(kp == 0 || (!a.is_null() && !b.is_null()), "null packed panel");

    // Held in memory across the loop, as in the f32 tile.
    let scalars = [alpha, beta];
    // SAFETY: the token's features are enabled on this function.
    crate::gemm::prefetch_tile(unsafe { Avx512::new_unchecked() }, beta, c, rs_c, cs_c, m, n);
    let mut acc = [[_mm512_setzero_ps(); 2]; MR_BF16];
    for q in 0..kp {
        // SAFETY: q < kp, so the loads read b[q·64 .. q·64 + 64] and
        // a[q·24 .. q·24 + 24], inside the panels.
        unsafe {
            let bq = b.add(q * 64);
            let b0: __m512bh = core::mem::transmute(_mm512_loadu_si512(bq.cast()));
            let b1: __m512bh = core::mem::transmute(_mm512_loadu_si512(bq.add(32).cast()));
            let aq = a.add(q * 2 * MR_BF16).cast::<i32>();
            for (i, row) in acc.iter_mut().enumerate() {
                let ai: __m512bh = core::mem::transmute(_mm512_set1_epi32(aq.add(i).read_unaligned()));
                row[0] = _mm512_dpbf16_ps(row[0], ai, b0);
                row[1] = _mm512_dpbf16_ps(row[1], ai, b1);
            }
        }
    }
    // SAFETY: both reads are of a live local array; the C contract is the
    // caller's, and the token's features are enabled on this function.
    unsafe {
        let (alpha, beta) = (core::ptr::read_volatile(&scalars[0]), core::ptr::read_volatile(&scalars[1]));
        crate::gemm::store_tile::<_, MR_BF16, 2>(Avx512::new_unchecked(), &acc, alpha, beta, c, rs_c, cs_c, m, n)
    }
}

/// Computes the skinny row form (see
/// [`skinny_rows`](crate::gemm::skinny_rows)) for bf16 B and bf16-exact A
/// with the AVX512_BF16 dot product. Each `vdpbf16ps` adds the products of
/// a pair of depth steps. A step of 32 columns and 8 depth steps then costs
/// 8 instructions per row of C, where the widening form needs 16 FMAs.
///
/// Operation, units, the A layout (f32 depth blocks of 8), the block of C
/// and its even/odd column order, the edge rule and the no-over-read rule
/// are those of `skinny_rows` with pair steps of 32 columns. The pairs of A
/// are rebuilt from the f32 values once per depth block by keeping their
/// upper 16 bits, which is exact only when every value of A is a bf16
/// value widened (low 16 bits zero). `vdpbf16ps` rounds to nearest even,
/// treats subnormal inputs and results as zero and ignores MXCSR; its
/// products of bf16 values are exact in f32.
///
/// # Safety
///
/// The CPU runs AVX-512 F/BW/DQ/VL and AVX512_BF16. The pointer contract
/// is that of `skinny_rows`, `m <= 16`, and every f32 of A has its low 16
/// bits zero.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c,avx512bf16")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn bf16_gemm_skinny_rows_avx512bf16(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    b: *const u16,
    rs_b: usize,
    c: *mut f32,
    rs_c: usize,
    block: *mut f32,
    block_cols: usize,
) {
    use crate::gemm::{SKINNY_BLOCK_PAD, SKINNY_DEPTH_BLOCK as P};
    const STEP: usize = 32;
    debug_assert!((1..=MAX_PAIR_ROWS).contains(&m), "m = {m} outside 1..={MAX_PAIR_ROWS}");
    debug_assert!(block_cols >= 1, "empty skinny block");
    let bs = block_cols + SKINNY_BLOCK_PAD;
    let mut pairs = [0u32; MAX_PAIR_ROWS * P / 2];
    let mut j0 = 0;
    while j0 < n {
        let jw = (n - j0).min(block_cols);
        for i in 0..m {
            // SAFETY: row i of C is readable at columns j0 .. j0 + jw <= n,
            // and block row i has room for jw <= block_cols floats.
            unsafe { crate::gemm::copy_block_row::<true>(c.add(i * rs_c + j0), block.add(i * bs), jw, STEP, true) };
        }
        let mut p = 0;
        while p < k {
            let pb = (k - p).min(P);
            // SAFETY: depth block p / 8 of A holds 8m floats.
            unsafe { a_pairs(a.add(p * m), m, &mut pairs) };
            let b_rows = b.wrapping_add(p * rs_b + j0);
            let full = if pb == P { jw / STEP * STEP } else { 0 };
            let mut jv = 0;
            // SAFETY: B rows p .. p + pb are read at columns j0 .. j0 + jw
            // <= n only (the edge step copies its columns into a padded
            // buffer), and the block at rows i < m and columns below jw.
            unsafe {
                while jv < full {
                    let row0 = b_rows.add(jv);
                    let mut rows = [_mm512_setzero_si512(); P];
                    for (q, row) in rows.iter_mut().enumerate() {
                        *row = _mm512_loadu_si512(row0.add(q * rs_b).cast());
                        // Next depth block's rows into L2, as in the
                        // widening form. Prefetching never faults.
                        _mm_prefetch::<_MM_HINT_T1>(row0.wrapping_add((q + P) * rs_b).cast());
                    }
                    dp_rows_step::<true>(m, &rows, &pairs, block.add(jv), bs, [16, 16]);
                    jv += STEP;
                }
                while jv < jw {
                    let nl = (jw - jv).min(STEP);
                    let mut rows = [_mm512_setzero_si512(); P];
                    for (q, row) in rows.iter_mut().enumerate().take(pb) {
                        let mut buf = [0u16; STEP];
                        core::ptr::copy_nonoverlapping(b_rows.add(q * rs_b + jv), buf.as_mut_ptr(), nl);
                        *row = _mm512_loadu_si512(buf.as_ptr().cast());
                    }
                    let first = nl.div_ceil(2);
                    dp_rows_step::<false>(m, &rows, &pairs, block.add(jv), bs, [first, nl - first]);
                    jv += STEP;
                }
            }
            p += pb;
        }
        for i in 0..m {
            // SAFETY: as for the copy in, in the other direction.
            unsafe { crate::gemm::copy_block_row::<false>(c.add(i * rs_c + j0), block.add(i * bs), jw, STEP, true) };
        }
        j0 += jw;
    }
}

/// Maximum rows of C that [`bf16_gemm_skinny_rows_avx512bf16`] takes, the
/// skinny path's limit.
pub const MAX_PAIR_ROWS: usize = 16;

/// Writes the bf16 pairs of one depth block of the skinny A layout: pair t
/// of row i is `(A[i, 2t], A[i, 2t + 1])` with the first value in the low
/// half, the operand order of `vdpbf16ps`.
///
/// # Safety
///
/// `a` addresses the `8m` floats of one depth block, and `m <= 16`.
#[inline(always)]
unsafe fn a_pairs(a: *const f32, m: usize, out: &mut [u32; MAX_PAIR_ROWS * 4]) {
    for i in 0..m {
        for t in 0..4 {
            // SAFETY: i · 8 + 2t + 1 < 8m.
            let (lo, hi) = unsafe { ((*a.add(i * 8 + 2 * t)).to_bits(), (*a.add(i * 8 + 2 * t + 1)).to_bits()) };
            debug_assert!(lo & 0xffff == 0 && hi & 0xffff == 0, "A[{i}, {}] is not a bf16 value", 2 * t);
            out[i * 4 + t] = (lo >> 16) | (hi & 0xffff_0000);
        }
    }
}

/// Adds one step of [`bf16_gemm_skinny_rows_avx512bf16`] into the `m` rows
/// of the block at `c`. The 8 rows of 32 bf16 columns of B in `rows` (zero
/// past the edge) are regrouped into depth pairs by column parity. Even
/// columns go to `c` (`lanes[0]` lanes), odd ones right after them
/// (`lanes[1]` lanes), and `FULL` means both are 16.
///
/// # Safety
///
/// `c + i · bs .. + lanes[0] + lanes[1]` is readable and writable for
/// `i < m`, and `pairs` holds the pairs of `m` rows.
#[inline(always)]
unsafe fn dp_rows_step<const FULL: bool>(
    m: usize,
    rows: &[__m512i; 8],
    pairs: &[u32; MAX_PAIR_ROWS * 4],
    c: *mut f32,
    bs: usize,
    lanes: [usize; 2],
) {
    // Odd 16-bit words of a 512-bit register: the upper half of each pair.
    const HIGH_WORDS: __mmask32 = 0xaaaa_aaaa;
    // SAFETY: AVX-512 BW and BF16 are enabled in every caller; the block
    // accesses are those of the caller's contract.
    unsafe {
        let mut even = [_mm512_setzero_si512(); 4];
        let mut odd = [_mm512_setzero_si512(); 4];
        for t in 0..4 {
            let (r0, r1) = (rows[2 * t], rows[2 * t + 1]);
            // Column 2u of row 2t in the low word, of row 2t + 1 in the high.
            even[t] = _mm512_mask_blend_epi16(HIGH_WORDS, r0, _mm512_slli_epi32::<16>(r1));
            // Column 2u + 1 likewise.
            odd[t] = _mm512_mask_blend_epi16(HIGH_WORDS, _mm512_srli_epi32::<16>(r0), r1);
        }
        let masks = [tail(lanes[0]), tail(lanes[1])];
        for i in 0..m {
            let ci = c.add(i * bs);
            let cv = [ci, ci.add(lanes[0])];
            let mut acc = [_mm512_setzero_ps(); 2];
            for v in 0..2 {
                acc[v] = if FULL { _mm512_loadu_ps(cv[v]) } else { _mm512_maskz_loadu_ps(masks[v], cv[v]) };
            }
            for t in 0..4 {
                let at: __m512bh = core::mem::transmute(_mm512_set1_epi32(pairs[i * 4 + t] as i32));
                acc[0] = _mm512_dpbf16_ps(acc[0], at, core::mem::transmute::<__m512i, __m512bh>(even[t]));
                acc[1] = _mm512_dpbf16_ps(acc[1], at, core::mem::transmute::<__m512i, __m512bh>(odd[t]));
            }
            for v in 0..2 {
                if FULL {
                    _mm512_storeu_ps(cv[v], acc[v]);
                } else {
                    _mm512_mask_storeu_ps(cv[v], masks[v], acc[v]);
                }
            }
        }
    }
}

/// Returns the mask of the first `n <= 16` lanes.
#[inline(always)]
fn tail(n: usize) -> __mmask16 {
    debug_assert!(n <= 16);
    ((1u32 << n) - 1) as __mmask16
}

/// Computes the skinny dot form (see
/// [`skinny_dots`](crate::gemm::skinny_dots)) for bf16 B and bf16-exact A
/// with the AVX512_BF16 dot product. B's columns are contiguous along the
/// depth, so one 512-bit load already contains 16 depth pairs and each
/// `vdpbf16ps` adds 32 products.
///
/// Operation, units, layouts, the beta rule and the no-over-read rule are
/// those of `skinny_dots`, except that A is bf16 (bit patterns, row-major
/// `a[i * k + p]`), half the bytes the kernel rereads from cache for each
/// block of 4 columns. `vdpbf16ps` rounds to nearest even, treats subnormal
/// inputs and results as zero and ignores MXCSR; its products of bf16
/// values are exact in f32.
///
/// # Safety
///
/// The CPU runs AVX-512 F/BW/DQ/VL and AVX512_BF16, and the pointer
/// contract is that of `skinny_dots` with `m · k` readable u16 at `a`.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c,avx512bf16")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn bf16_gemm_skinny_dots_avx512bf16(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: *const u16,
    b: *const u16,
    cs_b: usize,
    beta: f32,
    c: *mut f32,
    rs_c: isize,
    cs_c: isize,
) {
    const CJ: usize = 4;
    const R: usize = 4;
    debug_assert!(m >= 1 && n >= 1, "empty skinny product {m}x{n}");
    let mut j0 = 0;
    while j0 < n {
        // Columns past the edge alias the last valid one, as in the
        // widening dot form; their results are discarded.
        let mut cols = [0usize; CJ];
        for (q, slot) in cols.iter_mut().enumerate() {
            *slot = (j0 + q).min(n - 1);
        }
        let tile = DotsTile { cols, j0, n, k, alpha, a, b, cs_b, beta, c, rs_c, cs_c };
        let full = m / R * R;
        let mut i0 = 0;
        while i0 < full {
            // SAFETY: rows i0 .. i0 + R and the columns in `cols` are inside
            // the product, by the caller's contract.
            unsafe { dp_dots_tile::<R>(&tile, i0) };
            i0 += R;
        }
        while i0 < m {
            // SAFETY: as above, for row i0.
            unsafe { dp_dots_tile::<1>(&tile, i0) };
            i0 += 1;
        }
        j0 += CJ;
    }
}

/// The arguments of [`bf16_gemm_skinny_dots_avx512bf16`] for one block of
/// 4 columns.
struct DotsTile {
    cols: [usize; 4],
    j0: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: *const u16,
    b: *const u16,
    cs_b: usize,
    beta: f32,
    c: *mut f32,
    rs_c: isize,
    cs_c: isize,
}

/// Computes the R × 4 dot products of rows `i0 .. i0 + R` of A with the
/// columns `t.cols` of B and stores them at columns `t.j0 .. min(t.j0 + 4,
/// t.n)` of C. The first row block of a column block requests the next
/// block's columns into L2, as the widening dot form does.
///
/// # Safety
///
/// As for [`bf16_gemm_skinny_dots_avx512bf16`], with rows `i0 .. i0 + R`
/// inside A and every entry of `t.cols` a valid column of B.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c,avx512bf16")]
#[inline]
unsafe fn dp_dots_tile<const R: usize>(t: &DotsTile, i0: usize) {
    const CJ: usize = 4;
    const STEP: usize = 32;
    let k = t.k;
    let mut acc = [[_mm512_setzero_ps(); CJ]; R];
    let mut p = 0;
    // SAFETY: every load reads k-range p .. p + 32 (p + 32 <= k), or the
    // masked tail p .. k, of a valid row of A or column of B.
    unsafe {
        while p + STEP <= k {
            let mut bv = [_mm512_setzero_si512(); CJ];
            for (q, slot) in bv.iter_mut().enumerate() {
                *slot = _mm512_loadu_si512(t.b.add(t.cols[q] * t.cs_b + p).cast());
                if i0 == 0 {
                    // Prefetching never faults.
                    _mm_prefetch::<_MM_HINT_T1>(t.b.wrapping_add((t.cols[q] + CJ) * t.cs_b + p).cast());
                }
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let av: __m512bh = core::mem::transmute(_mm512_loadu_si512(t.a.add((i0 + r) * k + p).cast()));
                for (q, lane) in row.iter_mut().enumerate() {
                    *lane = _mm512_dpbf16_ps(*lane, av, core::mem::transmute::<__m512i, __m512bh>(bv[q]));
                }
            }
            p += STEP;
        }
        if p < k {
            let rest = k - p;
            let words = ((1u64 << rest) - 1) as __mmask32;
            let mut bv = [_mm512_setzero_si512(); CJ];
            for (q, slot) in bv.iter_mut().enumerate() {
                *slot = _mm512_maskz_loadu_epi16(words, t.b.add(t.cols[q] * t.cs_b + p).cast());
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let av: __m512bh = core::mem::transmute(_mm512_maskz_loadu_epi16(words, t.a.add((i0 + r) * k + p).cast()));
                for (q, lane) in row.iter_mut().enumerate() {
                    *lane = _mm512_dpbf16_ps(*lane, av, core::mem::transmute::<__m512i, __m512bh>(bv[q]));
                }
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (q, &x) in row.iter().enumerate() {
            if t.j0 + q >= t.n {
                break;
            }
            let dot = t.alpha * _mm512_reduce_add_ps(x);
            // SAFETY: (i0 + r, j0 + q) is inside the m × n output.
            unsafe {
                let out = t.c.offset((i0 + r) as isize * t.rs_c + (t.j0 + q) as isize * t.cs_c);
                *out = if t.beta == 0.0 { dot } else { dot + t.beta * *out };
            }
        }
    }
}

/// Packs the depth pairs of 32 bf16 columns of a row-major B into the B
/// panel layout of [`bf16_gemm_12x32_avx512bf16`]: for each pair q in
/// `0 .. pairs`, row `2q` and row `2q + 1` (32 contiguous u16 each, at
/// `b + 2q·ld` and `b + (2q + 1)·ld`) are interleaved into
/// `dst[q·64 .. q·64 + 64]`, column j's pair at `2j`. Units are u16
/// elements; no alignment is required and nothing outside those rows and
/// the `64·pairs` outputs is touched.
///
/// # Safety
///
/// The CPU runs AVX-512 F/BW; rows `0 .. 2·pairs` of 32 u16 at stride `ld`
/// from `b` are readable and `dst[0 .. 64·pairs]` is writable.
#[target_feature(enable = "avx512f,avx512bw")]
pub unsafe fn bf16_pack_b_pairs_32_avx512(b: *const u16, ld: usize, pairs: usize, dst: *mut u16) {
    use core::arch::x86_64::*;
    // Word 2j of the first output is word j of the even row (index j), and
    // word 2j + 1 is word j of the odd row (index 32 + j). The second
    // output takes words j + 16.
    const fn interleave(first: u16) -> [u16; 32] {
        let mut idx = [0u16; 32];
        let mut j = 0;
        while j < 16 {
            idx[2 * j] = first + j as u16;
            idx[2 * j + 1] = 32 + first + j as u16;
            j += 1;
        }
        idx
    }
    const LOW: [u16; 32] = interleave(0);
    const HIGH: [u16; 32] = interleave(16);
    // SAFETY: the index tables are 64 bytes each; every load reads 32 u16
    // of rows 2q and 2q + 1 < 2·pairs, and every store writes
    // dst[q·64 .. q·64 + 64], which the caller guarantees.
    unsafe {
        let (low, high) = (_mm512_loadu_si512(LOW.as_ptr().cast()), _mm512_loadu_si512(HIGH.as_ptr().cast()));
        for q in 0..pairs {
            let even = _mm512_loadu_si512(b.add(2 * q * ld).cast());
            let odd = _mm512_loadu_si512(b.add((2 * q + 1) * ld).cast());
            let out = dst.add(q * 64);
            _mm512_storeu_si512(out.cast(), _mm512_permutex2var_epi16(even, low, odd));
            _mm512_storeu_si512(out.add(32).cast(), _mm512_permutex2var_epi16(even, high, odd));
        }
    }
}

/// Packs the depth pairs of 12 rows of a row-major bf16 A into the A panel
/// layout of [`bf16_gemm_12x32_avx512bf16`]: row i's pair q (u16 elements
/// `2q` and `2q + 1` of row i, at `a + i·ld`) goes to
/// `dst[q·24 + 2i .. q·24 + 2i + 2]`, for q in `0 .. pairs`. A pair is one
/// 32-bit word, so 16 pairs of the 12 rows form a 12 × 16 block of words
/// that one register transpose turns into 16 panel columns. Units are u16
/// elements; no alignment is required. Reads stay inside the `2·pairs`
/// elements of each row; writes stay inside `dst[0 .. 24·pairs]`.
///
/// # Safety
///
/// The CPU runs AVX-512 F; elements `0 .. 2·pairs` of rows `0 .. 12` at
/// stride `ld` from `a` are readable and `dst[0 .. 24·pairs]` is writable.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")]
pub unsafe fn bf16_pack_a_pairs_12_avx512(a: *const u16, ld: usize, pairs: usize, dst: *mut u16) {
    use crate::simd::SimdF32;
    use core::arch::x86_64::*;
    // SAFETY: the target features above include those of the token.
    let s = unsafe { Avx512::new_unchecked() };
    let mut q = 0;
    // SAFETY: each block reads words q .. q + 16 ≤ pairs of the 12 rows
    // and writes 12 words at dst + (q + j)·24 for j < 16, inside
    // dst[0 .. 24·pairs]; the 4 rows past 12 are zero registers.
    unsafe {
        while q + 16 <= pairs {
            let mut rows = [_mm512_setzero_ps(); 16];
            for (i, row) in rows.iter_mut().take(12).enumerate() {
                *row = _mm512_loadu_ps(a.add(i * ld + 2 * q).cast());
            }
            // Word bit patterns pass through the f32 lane shuffles intact.
            s.transpose(&mut rows);
            for (j, col) in rows.iter().enumerate() {
                _mm512_mask_storeu_ps(dst.add((q + j) * 24).cast(), 0x0FFF, *col);
            }
            q += 16;
        }
        for q in q..pairs {
            for i in 0..12 {
                let word = a.add(i * ld + 2 * q).cast::<u32>().read_unaligned();
                dst.add(q * 24 + 2 * i).cast::<u32>().write_unaligned(word);
            }
        }
    }
}
