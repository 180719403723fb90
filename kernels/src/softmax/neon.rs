//! NEON entry points of the softmax family (4 lanes, 4× unrolled).

use crate::simd::neon::Neon;

super::softmax_kernels!(
    Neon,
    ["neon"],
    f32_softmax_neon,
    f32_softmax_rows_neon,
    f32_logsoftmax_rows_neon,
    f32_confidence_neon,
    f32_exp_neon
);
