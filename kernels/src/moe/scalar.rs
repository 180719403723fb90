//! Scalar entry points of the mixture-of-experts family: the same bodies on
//! one lane, used by the `scalar` dispatch level.

use crate::simd::scalar::Scalar;

super::moe_kernels!(
    Scalar,
    [],
    raw_moe_gather_scalar,
    f32_moe_combine_scalar,
    f32_moe_swiglu_scalar,
    f32_moe_skinny_scalar
);
