//! AVX2 + FMA entry points of the softmax family (8 lanes, 4× unrolled).

use crate::simd::avx2::Avx2;

super::softmax_kernels!(
    Avx2,
    ["avx2", "fma", "f16c"],
    f32_softmax_avx2,
    f32_softmax_rows_avx2,
    f32_logsoftmax_rows_avx2,
    f32_confidence_avx2,
    f32_exp_avx2
);
