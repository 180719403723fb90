//! NEON entry points of the attention family. The 6 × 4-vector GEMM tile
//! keeps 24 accumulators, 4 B vectors and one broadcast in the 32 vector
//! registers.

use crate::simd::neon::Neon;

super::attention_kernels!(
    Neon,
    ["neon"],
    6,
    4,
    4,
    f32_attention_kvf32_neon,
    f32_attention_kvf32_paced_neon,
    f32_attention_kvf32_l2prefetch_neon,
    f32_attention_kvf16_neon,
    f32_attention_kvf16_l2prefetch_neon,
    f32_attention_kvbf16_neon,
    f32_attention_kvbf16_l2prefetch_neon
);
