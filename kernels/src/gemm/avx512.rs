//! AVX-512 entry points of the GEMM family: a 12×32 register tile (24
//! accumulators of 16 lanes, plus 2 B vectors and broadcasts, in 32 zmm
//! registers).

use crate::simd::avx512::Avx512;

super::gemm_kernels!(
    Avx512,
    ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma", "f16c"],
    tile = 12 x 2,
    dot_rows = 4,
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
    use core::arch::x86_64::*;
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
