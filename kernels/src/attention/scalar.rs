//! Scalar entry points of the attention family: the same bodies on one
//! lane with a 4 × 4 register tile, used by the `scalar` dispatch level.

use crate::simd::scalar::Scalar;

super::attention_kernels!(
    Scalar,
    [],
    4,
    4,
    2,
    f32_attention_kvf32_scalar,
    f32_attention_kvf32_paced_scalar,
    f32_attention_kvf32_l2prefetch_scalar,
    f32_attention_kvf16_scalar,
    f32_attention_kvf16_l2prefetch_scalar,
    f32_attention_kvbf16_scalar,
    f32_attention_kvbf16_l2prefetch_scalar
);
