//! The token layout of a routing decision (a stable counting sort on expert
//! id), the gather into expert-contiguous rows and the weighted combine
//! back into token order.

use super::{CombineFn, GatherFn};
use crate::dispatch::kernels;
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::threads::{num_threads, parallel_for, SharedPtr};
use crate::validate;

/// Sizes of a routing decision: `tokens × k` choices over `experts`, with
/// each expert's segment padded to a multiple of `block` slots.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LayoutDims {
    pub tokens: usize,
    pub k: usize,
    pub experts: usize,
    pub block: usize,
}

impl LayoutDims {
    /// Validates the sizes and returns the number of choices `tokens · k`.
    pub(crate) fn choices(&self) -> Result<usize> {
        if self.block == 0 {
            return Err(Error::invalid("block = 0 is invalid; it must be >= 1 (1 means no padding)"));
        }
        if self.experts == 0 && self.tokens > 0 {
            return Err(Error::invalid(format!("experts = 0 is invalid with tokens = {}", self.tokens)));
        }
        self.tokens
            .checked_mul(self.k)
            .filter(|&n| n <= i64::MAX as usize)
            .ok_or_else(|| Error::invalid(format!("tokens = {} times k = {} overflows", self.tokens, self.k)))
    }
}

/// Builds the layout into caller buffers and returns the number of slots
/// used, padding included. Checks everything before writing anything.
///
/// Outputs: `counts[e]`, the choices routed to expert e; `offsets[0 ..=
/// experts]`, where expert e's segment is `offsets[e] .. offsets[e + 1]`
/// (its count rounded up to a multiple of `block`); `token_slot[t*k + j]`,
/// the slot of choice j of token t, or -1 when `ids[t*k + j]` is negative
/// (dropped); `slot_token[s]`, the token in slot s, or -1 for padding.
/// Within a segment, tokens keep their order.
pub(crate) fn layout_into(
    ids: &[i32],
    dims: LayoutDims,
    counts: &mut [i64],
    offsets: &mut [i64],
    token_slot: &mut [i64],
    slot_token: &mut [i64],
) -> Result<usize> {
    let choices = dims.choices()?;
    let experts = dims.experts;
    validate::slice_len("ids", ids.len(), choices)?;
    validate::slice_len("counts", counts.len(), experts)?;
    validate::slice_len("offsets", offsets.len(), experts + 1)?;
    validate::slice_len("token_slot", token_slot.len(), choices)?;
    let mut local = vec![0usize; experts];
    for (i, &e) in ids[..choices].iter().enumerate() {
        if e >= 0 {
            let e = e as usize;
            if e >= experts {
                return Err(Error::invalid(format!("ids[{i}] = {e} is out of range; experts = {experts}")));
            }
            local[e] += 1;
        }
    }
    let mut total = 0usize;
    for &c in &local {
        total = c
            .checked_next_multiple_of(dims.block)
            .and_then(|padded| total.checked_add(padded))
            .filter(|&t| t <= i64::MAX as usize)
            .ok_or_else(|| Error::invalid(format!("block = {} padding overflows the slot count", dims.block)))?;
    }
    validate::slice_len("slot_token", slot_token.len(), total)?;

    let mut cursor = vec![0usize; experts];
    let mut at = 0usize;
    for e in 0..experts {
        counts[e] = local[e] as i64;
        offsets[e] = at as i64;
        cursor[e] = at;
        at += local[e].next_multiple_of(dims.block);
    }
    offsets[experts] = at as i64;
    slot_token[..total].iter_mut().for_each(|s| *s = -1);
    for (i, &e) in ids[..choices].iter().enumerate() {
        if e < 0 {
            token_slot[i] = -1;
            continue;
        }
        let slot = cursor[e as usize];
        cursor[e as usize] += 1;
        token_slot[i] = slot as i64;
        slot_token[slot] = (i / dims.k) as i64;
    }
    Ok(total)
}

/// The expert-contiguous layout of one routing decision; see
/// [`MoeLayout::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MoeLayout {
    tokens: usize,
    k: usize,
    experts: usize,
    counts: Vec<i64>,
    offsets: Vec<i64>,
    token_slot: Vec<i64>,
    slot_token: Vec<i64>,
}

impl MoeLayout {
    /// Sorts the `tokens × k` choices in `ids` by expert with a stable
    /// counting sort. Each expert's segment is padded to a multiple of
    /// `block` slots (1 for none). Negative ids are dropped choices: they
    /// take no slot and combine as nothing.
    ///
    /// Errors: `block = 0`, an id at or above `experts`, `ids` too short,
    /// or sizes that overflow.
    pub fn new(ids: &[i32], tokens: usize, k: usize, experts: usize, block: usize) -> Result<MoeLayout> {
        let dims = LayoutDims { tokens, k, experts, block };
        let choices = dims.choices()?;
        let mut layout = MoeLayout {
            tokens,
            k,
            experts,
            counts: vec![0; experts],
            offsets: vec![0; experts + 1],
            token_slot: vec![0; choices],
            slot_token: Vec::new(),
        };
        // The slot count is known only after counting. Only experts with
        // choices are padded, by at most block - 1 slots each.
        let bound = experts
            .min(choices)
            .checked_mul(block - 1)
            .and_then(|p| p.checked_add(choices))
            .ok_or_else(|| Error::invalid(format!("block = {block} padding overflows the slot count")))?;
        layout.slot_token = vec![0; bound];
        let used = layout_into(
            ids,
            dims,
            &mut layout.counts,
            &mut layout.offsets,
            &mut layout.token_slot,
            &mut layout.slot_token,
        )?;
        layout.slot_token.truncate(used);
        Ok(layout)
    }

    /// Number of tokens.
    pub fn tokens(&self) -> usize {
        self.tokens
    }
    /// Choices per token.
    pub fn k(&self) -> usize {
        self.k
    }
    /// Number of experts.
    pub fn experts(&self) -> usize {
        self.experts
    }
    /// Choices routed to each expert (padding excluded).
    pub fn counts(&self) -> &[i64] {
        &self.counts
    }
    /// Segment starts, `experts + 1` entries; expert e owns slots
    /// `offsets[e] .. offsets[e + 1]`.
    pub fn offsets(&self) -> &[i64] {
        &self.offsets
    }
    /// Slot of each choice `t*k + j`, or -1 for a dropped choice.
    pub fn token_slot(&self) -> &[i64] {
        &self.token_slot
    }
    /// Token of each slot, or -1 for padding.
    pub fn slot_token(&self) -> &[i64] {
        &self.slot_token
    }
    /// Number of slots, padding included.
    pub fn num_slots(&self) -> usize {
        self.slot_token.len()
    }

    /// Returns the number of choices sent to each of `ranks` ranks when the
    /// experts are split contiguously (rank r owns experts `r·E/ranks ..
    /// (r+1)·E/ranks`): the send counts of an expert-parallel all-to-all.
    ///
    /// Errors: `ranks` is 0 or does not divide the expert count.
    pub fn rank_send_counts(&self, ranks: usize) -> Result<Vec<i64>> {
        let mut out = vec![0; ranks];
        rank_send_counts_into(&self.counts, self.experts, ranks, &mut out)?;
        Ok(out)
    }
}

/// Sums `counts` over contiguous runs of `experts / ranks` experts.
pub(crate) fn rank_send_counts_into(counts: &[i64], experts: usize, ranks: usize, out: &mut [i64]) -> Result<()> {
    if ranks == 0 || !experts.is_multiple_of(ranks) {
        return Err(Error::invalid(format!(
            "ranks = {ranks} is invalid; it must be > 0 and divide experts = {experts}"
        )));
    }
    validate::slice_len("counts", counts.len(), experts)?;
    validate::slice_len("send_counts", out.len(), ranks)?;
    let per = experts / ranks;
    for (r, o) in out[..ranks].iter_mut().enumerate() {
        *o = counts[r * per..(r + 1) * per].iter().sum();
    }
    Ok(())
}

/// Gathers rows of `row_bytes` bytes into slot order with the gather
/// kernel, split over threads in runs of at least 64 KiB.
///
/// # Safety
///
/// As for `mlak_kernels::moe::gather_rows` with `slots = slot_token.len()`.
pub(crate) unsafe fn gather_raw(
    src: *const u8,
    src_stride: usize,
    slot_token: &[i64],
    dst: *mut u8,
    dst_stride: usize,
    row_bytes: usize,
) -> Result<()> {
    let f: GatherFn = kernels()?.moe.gather;
    let threads = num_threads()?;
    let min_rows = ((64 << 10) / row_bytes.max(1)).max(1);
    let (src, dst) = (SharedPtr(src as *mut u8), SharedPtr(dst));
    parallel_for(slot_token.len(), min_rows, threads, |range| {
        let n = range.len();
        // SAFETY: each thread writes the disjoint destination rows of its
        // slot range; the sources and the map are shared reads.
        unsafe {
            f(
                src.get(),
                src_stride,
                slot_token.as_ptr().add(range.start),
                n,
                dst.get().add(range.start * dst_stride),
                dst_stride,
                row_bytes,
            )
        };
    });
    Ok(())
}

/// Combines expert outputs into token order with the combine kernel, split
/// over threads by token. Each token is summed by one thread in a fixed
/// order, so the result has the same bits for any thread count.
///
/// # Safety
///
/// As for `mlak_kernels::moe::combine_rows` with `tokens =
/// token_slot.len() / k`, and `weights` holds as many entries as
/// `token_slot`. `k = 0` writes nothing; callers zero the output then.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn combine_raw(
    y: *const f32,
    y_stride: usize,
    token_slot: &[i64],
    weights: *const f32,
    k: usize,
    out: *mut f32,
    out_stride: usize,
    d: usize,
    accumulate: bool,
) -> Result<()> {
    let f: CombineFn = kernels()?.moe.combine;
    let threads = num_threads()?;
    let tokens = token_slot.len().checked_div(k).unwrap_or(0);
    let min_tokens = ((16 << 10) / (d * k.max(1)).max(1)).max(1);
    let (y, w, out) = (SharedPtr(y as *mut f32), SharedPtr(weights as *mut f32), SharedPtr(out));
    if k == 0 {
        return Ok(());
    }
    parallel_for(tokens, min_tokens, threads, |range| {
        // SAFETY: each thread writes the output rows of its token range;
        // the expert outputs, slots and weights are shared reads.
        unsafe {
            f(
                y.get(),
                y_stride,
                token_slot.as_ptr().add(range.start * k),
                w.get().add(range.start * k),
                k,
                range.len(),
                out.get().add(range.start * out_stride),
                out_stride,
                d,
                accumulate,
            )
        };
    });
    Ok(())
}

/// Element types the gather moves: f32, bf16 and f16, copied bit for bit.
pub trait GatherElement: Copy + private::Sealed {
    /// The element's dtype.
    const DTYPE: Dtype;
}
impl GatherElement for f32 {
    const DTYPE: Dtype = Dtype::F32;
}
impl GatherElement for half::bf16 {
    const DTYPE: Dtype = Dtype::Bf16;
}
impl GatherElement for half::f16 {
    const DTYPE: Dtype = Dtype::F16;
}
mod private {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for half::bf16 {}
    impl Sealed for half::f16 {}
}

/// Checks `rows` rows of `d` elements `stride` apart in a slice of `len`.
fn check_rows(name: &str, len: usize, rows: usize, d: usize, stride: usize, elem: usize) -> Result<()> {
    validate::check_row_stride(&format!("{name}_stride"), stride, d)?;
    let elems = validate::span(name, rows, d, stride, elem)?;
    validate::slice_len(name, len, elems)
}

/// Copies token rows of `src` (`layout.tokens()` rows of `d` elements,
/// `src_stride` apart) into expert-contiguous order: row s of `dst`
/// (`dst_stride` apart) receives token `layout.slot_token()[s]`, and
/// padding slots are zeroed. Elements are copied bit for bit.
///
/// Errors: a stride below `d` or a slice too short.
pub fn moe_gather<T: GatherElement>(
    src: &[T],
    src_stride: usize,
    d: usize,
    layout: &MoeLayout,
    dst: &mut [T],
    dst_stride: usize,
) -> Result<()> {
    let size = T::DTYPE.size();
    check_rows("src", src.len(), layout.tokens, d, src_stride, size)?;
    check_rows("dst", dst.len(), layout.num_slots(), d, dst_stride, size)?;
    if d == 0 {
        return Ok(());
    }
    // SAFETY: every slot names a token below layout.tokens (the layout
    // guarantees it), whose row lies in `src`; `dst` covers every slot row;
    // a shared and a mutable slice never overlap.
    unsafe {
        gather_raw(
            src.as_ptr().cast(),
            src_stride * size,
            &layout.slot_token,
            dst.as_mut_ptr().cast(),
            dst_stride * size,
            d * size,
        )
    }
}

/// Writes `out[t, :] = Σ_j weights[t*k + j] · y[slot(t, j), :]` for every
/// token (`+=` when `accumulate`), where `y` holds the expert outputs in
/// slot order (`layout.num_slots()` rows of `d`, `y_stride` apart) and
/// `weights` the `tokens × k` routing weights. Dropped choices contribute
/// nothing. The sum runs in choice order with no atomics, so the result
/// has the same bits for any thread count.
///
/// Errors: a stride below `d` or a slice too short.
#[allow(clippy::too_many_arguments)]
pub fn moe_combine(
    y: &[f32],
    y_stride: usize,
    d: usize,
    layout: &MoeLayout,
    weights: &[f32],
    out: &mut [f32],
    out_stride: usize,
    accumulate: bool,
) -> Result<()> {
    check_rows("y", y.len(), layout.num_slots(), d, y_stride, 4)?;
    check_rows("out", out.len(), layout.tokens, d, out_stride, 4)?;
    validate::slice_len("weights", weights.len(), layout.token_slot.len())?;
    if d == 0 || layout.tokens == 0 {
        return Ok(());
    }
    if layout.k == 0 {
        if !accumulate {
            for t in 0..layout.tokens {
                out[t * out_stride..t * out_stride + d].iter_mut().for_each(|v| *v = 0.0);
            }
        }
        return Ok(());
    }
    // SAFETY: every slot is below num_slots, whose rows lie in `y`; `out`
    // covers every token row; the slices cannot overlap.
    unsafe {
        combine_raw(
            y.as_ptr(),
            y_stride,
            &layout.token_slot,
            weights.as_ptr(),
            layout.k,
            out.as_mut_ptr(),
            out_stride,
            d,
            accumulate,
        )
    }
}
