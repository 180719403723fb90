//! AVX2 entry points of the sparse normalizer family.

use crate::simd::avx2::Avx2;

super::entmax_kernels!(
    Avx2,
    ["avx2", "fma", "f16c"],
    f32_sparsemax_rows_avx2,
    f32_entmax15_rows_avx2,
    f32_alpha_entmax_rows_avx2,
    f32_sparsemax_backward_avx2,
    f32_entmax15_backward_avx2,
    f32_alpha_entmax_backward_avx2
);
