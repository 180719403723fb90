//! AVX2 entry points of the RoPE family (8 lanes, masked tails).

use crate::simd::avx2::Avx2;

super::rope_kernels!(Avx2, ["avx2", "fma", "f16c"], f32_rope_interleaved_avx2, f32_rope_half_avx2);
