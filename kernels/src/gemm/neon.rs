//! NEON entry points of the GEMM family: an 8×12 register tile (24
//! accumulators of 4 lanes, plus 3 B vectors and broadcasts, in 32 q
//! registers).

use crate::simd::neon::Neon;

super::gemm_kernels!(
    Neon,
    ["neon"],
    tile = 8 x 3,
    dot_rows = 4,
    row_pairs = true,
    f32_gemm_8x12_neon,
    f32_gemm_skinny_rows_neon,
    f32_gemm_skinny_dots_neon,
    f16_gemm_skinny_rows_neon,
    bf16_gemm_skinny_rows_neon,
    f16_gemm_skinny_dots_neon,
    bf16_gemm_skinny_dots_neon
);
