//! AVX-512 entry points of the softmax family (16 lanes, 4× unrolled,
//! masked tails).

use crate::simd::avx512::Avx512;

super::softmax_kernels!(
    Avx512,
    ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma", "f16c"],
    f32_softmax_avx512,
    f32_softmax_rows_avx512,
    f32_logsoftmax_rows_avx512,
    f32_confidence_avx512,
    f32_exp_avx512
);
