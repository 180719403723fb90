//! AVX2 entry points of the norm family (8 lanes, masked tails).

use crate::simd::avx2::Avx2;

super::norm_kernels!(Avx2, ["avx2", "fma", "f16c"], f32_layernorm_avx2, f32_rmsnorm_avx2);
