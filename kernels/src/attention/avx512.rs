//! AVX-512 entry points of the attention family. The 6 × 4-vector GEMM
//! tile keeps 24 accumulators, 4 B vectors and one broadcast in the 32 zmm
//! registers, and covers a whole 64-key block of scores per row.

use crate::simd::avx512::Avx512;

super::attention_kernels!(
    Avx512,
    ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma", "f16c"],
    6,
    4,
    4,
    f32_attention_kvf32_avx512,
    f32_attention_kvf32_paced_avx512,
    f32_attention_kvf32_l2prefetch_avx512,
    f32_attention_kvf16_avx512,
    f32_attention_kvf16_l2prefetch_avx512,
    f32_attention_kvbf16_avx512,
    f32_attention_kvbf16_l2prefetch_avx512
);
