//! NEON entry points of the mixture-of-experts family (4 lanes).

use crate::simd::neon::Neon;

super::moe_kernels!(
    Neon,
    ["neon"],
    raw_moe_gather_neon,
    f32_moe_combine_neon,
    f32_moe_swiglu_neon,
    f32_moe_skinny_neon
);
