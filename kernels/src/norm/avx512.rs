//! AVX-512 entry points of the norm family (16 lanes, masked tails).

use crate::simd::avx512::Avx512;

super::norm_kernels!(Avx512, ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma", "f16c"], f32_layernorm_avx512, f32_rmsnorm_avx512);
