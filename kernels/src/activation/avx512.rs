//! AVX-512 entry points of the activation family (16 lanes, masked tails).

use crate::simd::avx512::Avx512;

super::activation_kernels!(
    Avx512,
    ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma", "f16c"],
    unary {
        f32_gelu_erf_avx512 => gelu_erf_row,
        f32_gelu_tanh_avx512 => gelu_tanh_row,
        f32_silu_avx512 => silu_row,
        f32_erf_avx512 => erf_row,
        f32_tanh_avx512 => tanh_row,
    },
    binary {
        f32_swiglu_avx512 => swiglu_row,
        f32_bias_add_avx512 => bias_add_row,
    }
);
