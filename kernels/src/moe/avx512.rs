//! AVX-512 entry points of the mixture-of-experts family (16 lanes, masked
//! tails).

use crate::simd::avx512::Avx512;

super::moe_kernels!(
    Avx512,
    ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma", "f16c"],
    raw_moe_gather_avx512,
    f32_moe_combine_avx512,
    f32_moe_swiglu_avx512,
    f32_moe_skinny_avx512
);
