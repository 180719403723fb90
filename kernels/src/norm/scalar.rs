//! Scalar entry points of the norm family (one lane).

use crate::simd::scalar::Scalar;

super::norm_kernels!(Scalar, [], f32_layernorm_scalar, f32_rmsnorm_scalar);
