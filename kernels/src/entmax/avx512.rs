//! AVX-512 entry points of the sparse normalizer family.

use crate::simd::avx512::Avx512;

super::entmax_kernels!(
    Avx512,
    ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma", "f16c"],
    f32_sparsemax_rows_avx512,
    f32_entmax15_rows_avx512,
    f32_alpha_entmax_rows_avx512,
    f32_sparsemax_backward_avx512,
    f32_entmax15_backward_avx512,
    f32_alpha_entmax_backward_avx512
);
