//! Scalar entry points of the sparse normalizer family.

use crate::simd::scalar::Scalar;

super::entmax_kernels!(
    Scalar,
    [],
    f32_sparsemax_rows_scalar,
    f32_entmax15_rows_scalar,
    f32_alpha_entmax_rows_scalar,
    f32_sparsemax_backward_scalar,
    f32_entmax15_backward_scalar,
    f32_alpha_entmax_backward_scalar
);
