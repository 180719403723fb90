//! ISA-specific microkernels behind mlak's runtime dispatch.
//!
//! Each kernel family writes its algorithm once as an `#[inline(always)]`
//! body generic over [`simd::SimdF32`] and expands it into thin
//! `#[target_feature]` entry points per instruction set, named
//! `{dtype}_{operation}_{isa}` (with the register tile for GEMM). The entry
//! points are `unsafe`: the caller, mlak's dispatch layer, guarantees that the
//! CPU runs the instruction set and that the pointer contract on each
//! function holds. Nothing here allocates, validates or threads.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
// Kernel and driver entry points mirror BLAS-style argument lists (sizes,
// pointers, strides, scalars), which a struct would only obscure.
#![allow(clippy::too_many_arguments)]

pub mod activation;
pub mod attention;
pub mod entmax;
pub mod gemm;
pub mod moe;
pub mod norm;
pub mod rope;
pub mod simd;
pub mod softmax;
