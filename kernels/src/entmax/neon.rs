//! NEON entry points of the sparse normalizer family.

use crate::simd::neon::Neon;

super::entmax_kernels!(
    Neon,
    ["neon"],
    f32_sparsemax_rows_neon,
    f32_entmax15_rows_neon,
    f32_alpha_entmax_rows_neon,
    f32_sparsemax_backward_neon,
    f32_entmax15_backward_neon,
    f32_alpha_entmax_backward_neon
);
