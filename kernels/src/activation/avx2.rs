//! AVX2 entry points of the activation family (8 lanes, masked tails).

use crate::simd::avx2::Avx2;

super::activation_kernels!(
    Avx2,
    ["avx2", "fma", "f16c"],
    unary {
        f32_gelu_erf_avx2 => gelu_erf_row,
        f32_gelu_tanh_avx2 => gelu_tanh_row,
        f32_silu_avx2 => silu_row,
        f32_erf_avx2 => erf_row,
        f32_tanh_avx2 => tanh_row,
    },
    binary {
        f32_swiglu_avx2 => swiglu_row,
        f32_bias_add_avx2 => bias_add_row,
    }
);
