//! Mixture-of-experts layers: routers, load statistics, the token layout
//! (dispatch), the gather and combine, and the fused expert FFN layer.
//!
//! Shapes are row-major. Router logits are `tokens × experts`; the chosen
//! expert ids and their weights are `tokens × k`, with id -1 marking a
//! choice dropped by a capacity limit. Expert weights use the PyTorch
//! `Linear` layout, out-features by in-features, stacked over experts.

mod layer;
mod layout;
mod router;

pub use layer::{moe_layer, FfnWeights, MoeLayer, Weights};
pub use layout::{moe_combine, moe_gather, GatherElement, MoeLayout};
pub use router::{
    expert_counts, load_balance_stats, route_grouped_sigmoid, route_softmax_topk, route_top1_capacity,
    router_z_loss, update_expert_bias, CapacityRouting, GroupedRouting, LoadStats, Router,
};

pub(crate) use layout::{combine_raw, gather_raw, layout_into, rank_send_counts_into, LayoutDims};
pub(crate) use router::{capacity as router_capacity, grouped_rows, softmax_topk_rows, top1_capacity_rows};

type GatherFn = unsafe fn(*const u8, usize, *const i64, usize, *mut u8, usize, usize);
type CombineFn = unsafe fn(*const f32, usize, *const i64, *const f32, usize, usize, *mut f32, usize, usize, bool);
type SwigluFn = unsafe fn(*const f32, *const f32, *mut f32, usize);
type SkinnyFn = unsafe fn(*const f32, usize, usize, *const f32, usize, usize, usize, *mut f32, usize);

/// The mixture-of-experts family's entry points at one dispatch level.
pub(crate) struct MoeKernels {
    gather: GatherFn,
    combine: CombineFn,
    swiglu: SwigluFn,
    skinny: SkinnyFn,
}

macro_rules! moe_table {
    ($module:ident, $gather:ident, $combine:ident, $swiglu:ident, $skinny:ident) => {{
        use mlak_kernels::moe::$module::*;
        MoeKernels { gather: $gather, combine: $combine, swiglu: $swiglu, skinny: $skinny }
    }};
}

impl MoeKernels {
    pub(crate) const SCALAR: Self = moe_table!(
        scalar,
        raw_moe_gather_scalar,
        f32_moe_combine_scalar,
        f32_moe_swiglu_scalar,
        f32_moe_skinny_scalar
    );
    #[cfg(target_arch = "x86_64")]
    pub(crate) const AVX2: Self =
        moe_table!(avx2, raw_moe_gather_avx2, f32_moe_combine_avx2, f32_moe_swiglu_avx2, f32_moe_skinny_avx2);
    #[cfg(target_arch = "x86_64")]
    pub(crate) const AVX512: Self = moe_table!(
        avx512,
        raw_moe_gather_avx512,
        f32_moe_combine_avx512,
        f32_moe_swiglu_avx512,
        f32_moe_skinny_avx512
    );
    #[cfg(target_arch = "aarch64")]
    pub(crate) const NEON: Self =
        moe_table!(neon, raw_moe_gather_neon, f32_moe_combine_neon, f32_moe_swiglu_neon, f32_moe_skinny_neon);
}
