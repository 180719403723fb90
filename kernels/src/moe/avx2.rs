//! AVX2 entry points of the mixture-of-experts family (8 lanes).

use crate::simd::avx2::Avx2;

super::moe_kernels!(
    Avx2,
    ["avx2", "fma", "f16c"],
    raw_moe_gather_avx2,
    f32_moe_combine_avx2,
    f32_moe_swiglu_avx2,
    f32_moe_skinny_avx2
);
