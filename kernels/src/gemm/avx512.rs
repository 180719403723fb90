//! AVX-512 entry points of the GEMM family: a 12×32 register tile (24
//! accumulators of 16 lanes, plus 2 B vectors and broadcasts, in 32 zmm
//! registers).

use crate::simd::avx512::Avx512;

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
