//! NEON entry points of the norm family (4 lanes).

use crate::simd::neon::Neon;

super::norm_kernels!(Neon, ["neon"], f32_layernorm_neon, f32_rmsnorm_neon);
