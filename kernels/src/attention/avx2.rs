//! AVX2 entry points of the attention family. The 6 × 2-vector GEMM tile
//! keeps 12 accumulators, 2 B vectors and one broadcast in the 16 ymm
//! registers.

use crate::simd::avx2::Avx2;

super::attention_kernels!(
    Avx2,
    ["avx2", "fma", "f16c"],
    6,
    2,
    2,
    f32_attention_kvf32_avx2,
    f32_attention_kvf32_paced_avx2,
    f32_attention_kvf32_l2prefetch_avx2,
    f32_attention_kvf16_avx2,
    f32_attention_kvf16_l2prefetch_avx2,
    f32_attention_kvbf16_avx2,
    f32_attention_kvbf16_l2prefetch_avx2
);
