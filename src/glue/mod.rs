//! Transformer glue: LayerNorm and RMSNorm with a fused residual add,
//! element-wise activations, SwiGLU, bias add and rotary position
//! embedding. This module holds the kernel table and the row walker that
//! the drivers in the submodules share.
//!
//! Shapes are `rows × n` in row-major order with a row stride in elements,
//! as in the softmax family.

pub(crate) mod activation;
pub(crate) mod norm;
pub(crate) mod rope;

use crate::threads::{num_threads, parallel_for, MIN_ELEMS_PER_THREAD};
use mlak_kernels::norm::NormRow;

type UnaryFn = unsafe fn(*const f32, *mut f32, usize);
type BinaryFn = unsafe fn(*const f32, *const f32, *mut f32, usize);
type NormFn = unsafe fn(NormRow, usize, f32);
type RopeFn = unsafe fn(*const f32, *mut f32, usize, usize, usize, *const f32, *const f32);

/// The glue family's entry points at one dispatch level.
pub(crate) struct GlueKernels {
    layernorm: NormFn,
    rmsnorm: NormFn,
    gelu_erf: UnaryFn,
    gelu_tanh: UnaryFn,
    silu: UnaryFn,
    erf: UnaryFn,
    tanh: UnaryFn,
    swiglu: BinaryFn,
    bias_add: BinaryFn,
    rope_interleaved: RopeFn,
    rope_half: RopeFn,
}

impl GlueKernels {
    pub(crate) const SCALAR: Self = {
        use mlak_kernels::{activation::scalar::*, norm::scalar::*, rope::scalar::*};
        GlueKernels {
            layernorm: f32_layernorm_scalar,
            rmsnorm: f32_rmsnorm_scalar,
            gelu_erf: f32_gelu_erf_scalar,
            gelu_tanh: f32_gelu_tanh_scalar,
            silu: f32_silu_scalar,
            erf: f32_erf_scalar,
            tanh: f32_tanh_scalar,
            swiglu: f32_swiglu_scalar,
            bias_add: f32_bias_add_scalar,
            rope_interleaved: f32_rope_interleaved_scalar,
            rope_half: f32_rope_half_scalar,
        }
    };
    #[cfg(target_arch = "x86_64")]
    pub(crate) const AVX2: Self = {
        use mlak_kernels::{activation::avx2::*, norm::avx2::*, rope::avx2::*};
        GlueKernels {
            layernorm: f32_layernorm_avx2,
            rmsnorm: f32_rmsnorm_avx2,
            gelu_erf: f32_gelu_erf_avx2,
            gelu_tanh: f32_gelu_tanh_avx2,
            silu: f32_silu_avx2,
            erf: f32_erf_avx2,
            tanh: f32_tanh_avx2,
            swiglu: f32_swiglu_avx2,
            bias_add: f32_bias_add_avx2,
            rope_interleaved: f32_rope_interleaved_avx2,
            rope_half: f32_rope_half_avx2,
        }
    };
    #[cfg(target_arch = "x86_64")]
    pub(crate) const AVX512: Self = {
        use mlak_kernels::{activation::avx512::*, norm::avx512::*, rope::avx512::*};
        GlueKernels {
            layernorm: f32_layernorm_avx512,
            rmsnorm: f32_rmsnorm_avx512,
            gelu_erf: f32_gelu_erf_avx512,
            gelu_tanh: f32_gelu_tanh_avx512,
            silu: f32_silu_avx512,
            erf: f32_erf_avx512,
            tanh: f32_tanh_avx512,
            swiglu: f32_swiglu_avx512,
            bias_add: f32_bias_add_avx512,
            rope_interleaved: f32_rope_interleaved_avx512,
            rope_half: f32_rope_half_avx512,
        }
    };
    #[cfg(target_arch = "aarch64")]
    pub(crate) const NEON: Self = {
        use mlak_kernels::{activation::neon::*, norm::neon::*, rope::neon::*};
        GlueKernels {
            layernorm: f32_layernorm_neon,
            rmsnorm: f32_rmsnorm_neon,
            gelu_erf: f32_gelu_erf_neon,
            gelu_tanh: f32_gelu_tanh_neon,
            silu: f32_silu_neon,
            erf: f32_erf_neon,
            tanh: f32_tanh_neon,
            swiglu: f32_swiglu_neon,
            bias_add: f32_bias_add_neon,
            rope_interleaved: f32_rope_interleaved_neon,
            rope_half: f32_rope_half_neon,
        }
    };
}

impl crate::kernels_table::Kernels {
    /// The vector erf row kernel, for the flat C export.
    pub(crate) fn glue_erf(&self) -> UnaryFn {
        self.glue.erf
    }

    /// The vector tanh row kernel, for the flat C export.
    pub(crate) fn glue_tanh(&self) -> UnaryFn {
        self.glue.tanh
    }
}

/// Runs `f(r)` for every row `r < rows` of `n` elements, splitting the rows
/// over the configured threads once there is enough work.
pub(crate) fn for_each_row(rows: usize, n: usize, f: impl Fn(usize) + Sync) -> crate::Result<()> {
    let threads = num_threads()?;
    let per_chunk = (MIN_ELEMS_PER_THREAD / n.max(1)).max(1);
    parallel_for(rows, per_chunk, threads, |range| range.for_each(&f));
    Ok(())
}
