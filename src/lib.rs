//! mlak: SIMD CPU kernels for the building blocks of transformer models,
//! with runtime instruction-set dispatch, a C ABI and a safe Rust API.
//!
//! Every kernel has a scalar path and AVX2, AVX-512 or NEON microkernels
//! (in the `mlak-kernels` crate), selected once per process from the CPU's
//! features and capped by `MLAK_ISA` or [`set_isa`]. The f64 references in
//! [`reference`] define what each kernel computes and back the test suites.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
// Kernel and driver entry points mirror BLAS-style argument lists (sizes,
// pointers, strides, scalars), which a struct would only obscure.
#![allow(clippy::too_many_arguments)]

mod attention;
mod dispatch;
mod dtype;
mod entmax;
mod error;
mod gemm;
pub mod ffi;
mod glue;
mod kernels_table;
mod moe;
mod once;
pub mod reference;
mod softmax;
mod threads;
mod validate;
mod workspace;

pub use attention::{
    attention, contiguous_strides, AttentionArgs, AttentionOptions, AttentionShape, KvSlice,
};
pub use dispatch::{
    active_isa, best_isa, cpu_features, feature, isa_supported, last_dispatched_isa, set_isa, with_isa, Isa,
};
pub use dtype::{Dtype, Element};
pub use entmax::{
    alpha_entmax, alpha_entmax_backward, entmax15, entmax15_backward, sparsemax, sparsemax_backward, BackwardShape,
};
pub use error::{Error, Result, Status};
pub use gemm::{gemm_mixed, sgemm, sgemm_strided_safe as sgemm_strided, GemmInput, Layout, Transpose};
pub use glue::activation::{activate, activate_in_place, bias_add_in_place, erf, swiglu, tanh, Activation};
pub use glue::norm::{add_layernorm, add_rmsnorm, layernorm, rmsnorm, NormParams};
pub use glue::rope::{rope, rope_in_place, RopeLayout, RopeParams};
pub use softmax::{
    confidence, early_exit, exp, log_softmax, softmax, softmax_in_place, Confidence, ExitThresholds,
};
pub use threads::{num_threads, set_num_threads};
pub use moe::{
    expert_counts, load_balance_stats, moe_combine, moe_gather, moe_layer, route_grouped_sigmoid, route_softmax_topk,
    route_top1_capacity, router_z_loss, update_expert_bias, CapacityRouting, FfnWeights, GatherElement, GroupedRouting,
    LoadStats, MoeLayer, MoeLayout, Router, Weights,
};
