//! AVX-512 entry points of the RoPE family (16 lanes, masked tails).

use crate::simd::avx512::Avx512;

super::rope_kernels!(Avx512, ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma", "f16c"], f32_rope_interleaved_avx512, f32_rope_half_avx512);
