//! Scalar entry points of the GEMM family: a 4×4 register tile on one lane,
//! used by the `scalar` dispatch level.

use crate::simd::scalar::Scalar;

super::gemm_kernels!(
    Scalar,
    [],
    tile = 4 x 4,
    dot_rows = 2,
    row_pairs = false,
    f32_gemm_4x4_scalar,
    f32_gemm_skinny_rows_scalar,
    f32_gemm_skinny_dots_scalar,
    f16_gemm_skinny_rows_scalar,
    bf16_gemm_skinny_rows_scalar,
    f16_gemm_skinny_dots_scalar,
    bf16_gemm_skinny_dots_scalar
);
