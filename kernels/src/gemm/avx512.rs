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
    f32_gemm_skinny_dots_avx512
);
