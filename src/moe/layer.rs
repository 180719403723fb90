//! The fused mixture-of-experts FFN layer: router, dispatch, a SwiGLU FFN
//! per expert, combine and optional shared experts.

use super::layout::{combine_raw, gather_raw, layout_into, LayoutDims};
use super::router::{grouped_rows, softmax_topk_rows, top1_capacity_rows, Router};
use super::MoeKernels;
use crate::dispatch::kernels;
use crate::error::{Error, Result};
use crate::dtype::Dtype;
use crate::gemm::{gemm_strided, Operand};
use crate::threads::{num_threads, parallel_for, SharedPtr};
use crate::validate;
use mlak_kernels::moe::SKINNY_MAX_TOKENS;

/// A weight tensor in one of the supported element types.
#[derive(Clone, Copy, Debug)]
pub enum Weights<'a> {
    /// f32 weights.
    F32(&'a [f32]),
    /// bf16 weights, read directly by the mixed-precision GEMM.
    Bf16(&'a [half::bf16]),
}

impl Weights<'_> {
    fn len(&self) -> usize {
        match self {
            Weights::F32(w) => w.len(),
            Weights::Bf16(w) => w.len(),
        }
    }
}

/// SwiGLU FFN weights of one or more experts, stacked expert by expert in
/// the PyTorch `Linear` layout: `gate` and `up` are `width × d` per expert,
/// `down` is `d × width`. Expert e computes
/// `down · (silu(gate · x) ⊙ (up · x))`.
#[derive(Clone, Copy, Debug)]
pub struct FfnWeights<'a> {
    /// Gate projections, `experts × width × d`.
    pub gate: Weights<'a>,
    /// Up projections, `experts × width × d`.
    pub up: Weights<'a>,
    /// Down projections, `experts × d × width`.
    pub down: Weights<'a>,
    /// Hidden width of each expert's FFN.
    pub width: usize,
}

/// A mixture-of-experts FFN layer.
#[derive(Clone, Copy, Debug)]
pub struct MoeLayer<'a> {
    /// Model width.
    pub d: usize,
    /// Number of routed experts.
    pub experts: usize,
    /// Router projection, `experts × d`; the logits are `x · router_weightᵀ`.
    pub router_weight: &'a [f32],
    /// The routing rule.
    pub router: Router<'a>,
    /// The routed experts' FFNs.
    pub expert_ffn: FfnWeights<'a>,
    /// Shared experts applied to every token with weight 1, as one FFN (the
    /// shared experts of a model concatenated along the hidden width).
    pub shared_ffn: Option<FfnWeights<'a>>,
}

fn mul(name: &str, a: usize, b: usize) -> Result<usize> {
    a.checked_mul(b).ok_or_else(|| Error::invalid(format!("{name}: {a} times {b} overflows")))
}

/// Computes `y[i, j] = Σ_p x[i, p] · w[offset + j·depth + p]` for `n` token
/// rows (`x_stride` apart) and `rows` weight rows, into `y` rows
/// `y_stride` apart. f32 weights with up to `SKINNY_MAX_TOKENS` tokens take
/// the MoE skinny kernel; everything else goes to the GEMM, which reads
/// bf16 weights directly and has its own skinny path for decode shapes.
///
/// # Safety
///
/// `x` addresses `n` rows of `depth` values, `y` `n` writable rows of
/// `rows` values, and `w` holds `offset + rows·depth` values (checked by the
/// layer's validation).
#[allow(clippy::too_many_arguments)]
unsafe fn project(
    k: &MoeKernels,
    x: *const f32,
    x_stride: usize,
    n: usize,
    w: Weights,
    offset: usize,
    rows: usize,
    depth: usize,
    y: *mut f32,
    y_stride: usize,
) -> Result<()> {
    let (xs, ys) = (x_stride as isize, y_stride as isize);
    let a = Operand { ptr: x.cast(), dtype: Dtype::F32, rs: xs, cs: 1 };
    // Weight row j is column j of B, so B's row stride is 1 and its column
    // stride is depth.
    let b = match w {
        Weights::F32(w) => {
            let wp = w[offset..offset + rows * depth].as_ptr();
            if n <= SKINNY_MAX_TOKENS {
                // SAFETY: wp addresses rows·depth values; x and y address n rows
                // as the caller guarantees.
                unsafe { (k.skinny)(x, x_stride, n, wp, depth, rows, depth, y, y_stride) };
                return Ok(());
            }
            Operand { ptr: wp.cast(), dtype: Dtype::F32, rs: 1, cs: depth as isize }
        }
        Weights::Bf16(w) => {
            let wp = w[offset..offset + rows * depth].as_ptr();
            Operand { ptr: wp.cast(), dtype: Dtype::Bf16, rs: 1, cs: depth as isize }
        }
    };
    // SAFETY: A is n×depth at x, B is depth×rows inside the checked weight
    // slice, and C is n×rows at y, all as the caller guarantees.
    unsafe { gemm_strided(n, rows, depth, 1.0, a, b, 0.0, y, ys, 1) }
}

/// Runs expert `e`'s SwiGLU FFN on `n` rows of `x` (`d` wide, contiguous)
/// into `n` rows of `y` (`y_stride` apart).
///
/// # Safety
///
/// `x` addresses `n · d` values and `y` `n` writable rows of `d`; the
/// weights hold expert `e` (checked by the layer's validation).
#[allow(clippy::too_many_arguments)]
unsafe fn expert_ffn(
    k: &MoeKernels,
    ffn: &FfnWeights,
    e: usize,
    d: usize,
    x: *const f32,
    n: usize,
    y: *mut f32,
    y_stride: usize,
) -> Result<()> {
    let f = ffn.width;
    let mut gate = vec![0.0f32; n * f];
    let mut up = vec![0.0f32; n * f];
    let in_off = e * f * d;
    // SAFETY: gate and up hold n rows of f; the caller covers x, y and the
    // weights of expert e.
    unsafe {
        project(k, x, d, n, ffn.gate, in_off, f, d, gate.as_mut_ptr(), f)?;
        project(k, x, d, n, ffn.up, in_off, f, d, up.as_mut_ptr(), f)?;
        (k.swiglu)(gate.as_ptr(), up.as_ptr(), gate.as_mut_ptr(), n * f);
        project(k, gate.as_ptr(), f, n, ffn.down, e * d * f, d, f, y, y_stride)
    }
}

fn check_ffn(name: &str, ffn: &FfnWeights, experts: usize, d: usize) -> Result<()> {
    let per = mul(name, ffn.width, d)?;
    let total = mul(name, per, experts)?;
    validate::slice_len(&format!("{name}.gate"), ffn.gate.len(), total)?;
    validate::slice_len(&format!("{name}.up"), ffn.up.len(), total)?;
    validate::slice_len(&format!("{name}.down"), ffn.down.len(), total)
}

impl MoeLayer<'_> {
    fn validate(&self, x_len: usize, tokens: usize, out_len: usize) -> Result<usize> {
        let d = self.d;
        if self.experts == 0 {
            return Err(Error::invalid("experts = 0 is invalid; a layer needs at least one expert"));
        }
        let k = self.router.k();
        if k == 0 || k > self.experts {
            return Err(Error::invalid(format!("k = {k} is invalid; it must be in 1 ..= experts = {}", self.experts)));
        }
        if let Router::GroupedSigmoid(g) = &self.router {
            g.validate(self.experts)?;
        }
        if let Router::Top1Capacity { capacity_factor } = self.router {
            super::router::capacity(capacity_factor, tokens, self.experts)?;
        }
        validate::slice_len("router_weight", self.router_weight.len(), mul("router_weight", self.experts, d)?)?;
        check_ffn("expert_ffn", &self.expert_ffn, self.experts, d)?;
        if let Some(s) = &self.shared_ffn {
            check_ffn("shared_ffn", s, 1, d)?;
        }
        let elems = mul("x", tokens, d)?;
        validate::span("x", tokens, d, d, 4)?;
        validate::slice_len("x", x_len, elems)?;
        validate::slice_len("out", out_len, elems)?;
        mul("ids", tokens, k)?;
        Ok(k)
    }
}

/// Computes the layer's output `out` (`tokens × d`) for the input `x`
/// (`tokens × d`):
/// 1. logits `x · router_weightᵀ` and the routing rule of `layer.router`;
/// 2. the stable layout by expert and a gather of the token rows;
/// 3. each expert's SwiGLU FFN on its rows, skipping experts with no
///    tokens and using the skinny kernel for up to 4 tokens;
/// 4. the weighted combine in token order, added to the shared experts'
///    output when there are shared experts.
///
/// A token dropped by a capacity limit gets only the shared experts'
/// output (or 0). Experts run in parallel, but each expert's FFN runs on
/// one thread and each token's combine has a fixed order, so the output
/// has the same bits for any thread count.
///
/// Errors: inconsistent sizes, an invalid router, or slices too short.
pub fn moe_layer(layer: &MoeLayer, x: &[f32], tokens: usize, out: &mut [f32]) -> Result<()> {
    let k = layer.validate(x.len(), tokens, out.len())?;
    let (d, experts) = (layer.d, layer.experts);
    let kern = &kernels()?.moe;
    if tokens == 0 {
        return Ok(());
    }

    let mut logits = vec![0.0f32; tokens * experts];
    // SAFETY: x holds tokens rows of d, logits tokens rows of experts, and
    // router_weight experts rows of d (all validated).
    unsafe {
        let w = Weights::F32(layer.router_weight);
        project(kern, x.as_ptr(), d, tokens, w, 0, experts, d, logits.as_mut_ptr(), experts)?;
    }
    let mut ids = vec![0i32; tokens * k];
    let mut weights = vec![0.0f32; tokens * k];
    match &layer.router {
        Router::SoftmaxTopK { renormalize, .. } => {
            softmax_topk_rows(&logits, tokens, experts, k, *renormalize, &mut ids, &mut weights, None)?
        }
        Router::Top1Capacity { capacity_factor } => {
            let mut dropped = vec![0i64; tokens];
            top1_capacity_rows(&logits, tokens, experts, *capacity_factor, &mut ids, &mut weights, &mut dropped, None)?;
        }
        Router::GroupedSigmoid(g) => grouped_rows(&logits, tokens, experts, g, &mut ids, &mut weights, None)?,
    }

    let dims = LayoutDims { tokens, k, experts, block: 1 };
    let mut counts = vec![0i64; experts];
    let mut offsets = vec![0i64; experts + 1];
    let mut token_slot = vec![0i64; tokens * k];
    let mut slot_token = vec![0i64; tokens * k];
    let slots = layout_into(&ids, dims, &mut counts, &mut offsets, &mut token_slot, &mut slot_token)?;
    let mut xs = vec![0.0f32; slots * d];
    // SAFETY: slot_token names tokens below `tokens`, whose rows lie in x;
    // xs holds `slots` rows of d.
    unsafe { gather_raw(x.as_ptr().cast(), d * 4, &slot_token[..slots], xs.as_mut_ptr().cast(), d * 4, d * 4)? };

    let mut ys = vec![0.0f32; slots * d];
    let active: Vec<usize> = (0..experts).filter(|&e| counts[e] > 0).collect();
    let failure = std::sync::Mutex::new(None);
    let (xs_ptr, ys_ptr) = (SharedPtr(xs.as_mut_ptr()), SharedPtr(ys.as_mut_ptr()));
    parallel_for(active.len(), 1, num_threads()?, |range| {
        for &e in &active[range] {
            let (start, n) = (offsets[e] as usize, counts[e] as usize);
            // SAFETY: expert e owns slots start .. start + n of xs and ys,
            // which no other expert touches.
            let r = unsafe {
                expert_ffn(kern, &layer.expert_ffn, e, d, xs_ptr.get().add(start * d), n, ys_ptr.get().add(start * d), d)
            };
            if let Err(err) = r {
                *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(err);
            }
        }
    });
    if let Some(err) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(err);
    }

    if let Some(shared) = &layer.shared_ffn {
        // SAFETY: x and out hold tokens rows of d; the shared weights hold
        // one expert (validated).
        unsafe { expert_ffn(kern, shared, 0, d, x.as_ptr(), tokens, out.as_mut_ptr(), d)? };
    }
    // SAFETY: token_slot holds tokens·k slots below `slots`, whose rows lie
    // in ys; out holds tokens rows of d.
    unsafe {
        combine_raw(ys.as_ptr(), d, &token_slot, weights.as_ptr(), k, out.as_mut_ptr(), d, d, layer.shared_ffn.is_some())
    }
}
