//! NEON entry points of the RoPE family (4 lanes).

use crate::simd::neon::Neon;

super::rope_kernels!(Neon, ["neon"], f32_rope_interleaved_neon, f32_rope_half_neon);
