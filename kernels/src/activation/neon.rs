//! NEON entry points of the activation family (4 lanes).

use crate::simd::neon::Neon;

super::activation_kernels!(
    Neon,
    ["neon"],
    unary {
        f32_gelu_erf_neon => gelu_erf_row,
        f32_gelu_tanh_neon => gelu_tanh_row,
        f32_silu_neon => silu_row,
        f32_erf_neon => erf_row,
        f32_tanh_neon => tanh_row,
    },
    binary {
        f32_swiglu_neon => swiglu_row,
        f32_bias_add_neon => bias_add_row,
    }
);
