//! AVX2 entry points of the GEMM family: a 6×16 register tile (12
//! accumulators of 8 lanes, plus 2 B vectors and 1 broadcast, in 16 ymm
//! registers).

use crate::simd::avx2::Avx2;

super::gemm_kernels!(
    Avx2,
    ["avx2", "fma", "f16c"],
    tile = 6 x 2,
    dot_rows = 2,
    row_pairs = true,
    f32_gemm_6x16_avx2,
    f32_gemm_skinny_rows_avx2,
    f32_gemm_skinny_dots_avx2,
    f16_gemm_skinny_rows_avx2,
    bf16_gemm_skinny_rows_avx2,
    f16_gemm_skinny_dots_avx2,
    bf16_gemm_skinny_dots_avx2
);
