//! Scalar entry points of the activation family (one lane).

use crate::simd::scalar::Scalar;

super::activation_kernels!(
    Scalar,
    [],
    unary {
        f32_gelu_erf_scalar => gelu_erf_row,
        f32_gelu_tanh_scalar => gelu_tanh_row,
        f32_silu_scalar => silu_row,
        f32_erf_scalar => erf_row,
        f32_tanh_scalar => tanh_row,
    },
    binary {
        f32_swiglu_scalar => swiglu_row,
        f32_bias_add_scalar => bias_add_row,
    }
);
