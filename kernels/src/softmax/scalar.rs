//! Scalar entry points of the softmax family: the same bodies on one lane,
//! used by the `scalar` dispatch level.

use crate::simd::scalar::Scalar;

super::softmax_kernels!(
    Scalar,
    [],
    f32_softmax_scalar,
    f32_softmax_rows_scalar,
    f32_logsoftmax_rows_scalar,
    f32_confidence_scalar,
    f32_exp_scalar
);
