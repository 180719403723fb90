//! Scalar entry points of the RoPE family (one lane).

use crate::simd::scalar::Scalar;

super::rope_kernels!(Scalar, [], f32_rope_interleaved_scalar, f32_rope_half_scalar);
