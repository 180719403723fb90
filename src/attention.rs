//! Fused attention: kernel table, validation, task planning, split-KV
//! merging and the safe API.
//!
//! O = softmax(scale·Q·Kᵀ + modifiers)·V per batch and query head, with
//! Q `[B, Hq, Lq, D]`, K `[B, Hkv, Lkv, D]`, V `[B, Hkv, Lkv, Dv]` and O
//! `[B, Hq, Lq, Dv]` at any element strides whose last one is 1. Query head
//! h reads KV head h / (Hq / Hkv).
//!
//! Positions: query i of batch b sits at KV position
//! `kv_len_b − Lq + i + position_offset`, where `kv_len_b` is the batch's
//! key length (`kv_lengths[b]`, else Lkv). With offset 0 causal masking is
//! aligned to the bottom right. Keys at or past `kv_len_b` are masked and
//! never read.
//!
//! Score of query i and key j, before the softmax:
//! `s = scale·q·k`, then `c·tanh(s/c)` when a softcap c > 0 is set, then
//! `+ bias[b, h, i, j]`, then `− slope_h·|pos_i − j|` with ALiBi slopes.
//! Causal masking drops j > pos_i; a window w > 0 drops j <= pos_i − w, and
//! without causal masking also j >= pos_i + w.
//!
//! Edge policy: a row with no unmasked key outputs zeros and lse −inf. NaN
//! in a used Q, K, V or bias value propagates, and [`attention`] states the
//! exact reach of a NaN in V.

use crate::dispatch::kernels;
use crate::dtype::Dtype;
use crate::error::{Error, Result, Status};
use crate::threads::{num_threads, parallel_for, SharedPtr};
use crate::validate;
use mlak_kernels::attention::{kt_cache_len, kt_cache_reset, scratch_len, AttentionTask, DOT_ROWS_MAX, KV_BLOCK};

type TaskFn = unsafe fn(&AttentionTask, *mut f32);

/// The attention family's entry points at one dispatch level, one per K/V
/// element type.
pub(crate) struct AttentionKernels {
    kv_f32: TaskFn,
    /// f32 with paced decode prefetch, for K and V read from DRAM.
    kv_f32_paced: TaskFn,
    /// f32 with decode prefetch into L2, for Intel cores.
    kv_f32_l2: TaskFn,
    kv_f16: TaskFn,
    kv_f16_l2: TaskFn,
    kv_bf16: TaskFn,
    kv_bf16_l2: TaskFn,
}

impl AttentionKernels {
    pub(crate) const SCALAR: Self = {
        use mlak_kernels::attention::scalar::*;
        AttentionKernels {
            kv_f32: f32_attention_kvf32_scalar,
            kv_f32_paced: f32_attention_kvf32_paced_scalar,
            kv_f32_l2: f32_attention_kvf32_l2prefetch_scalar,
            kv_f16: f32_attention_kvf16_scalar,
            kv_f16_l2: f32_attention_kvf16_l2prefetch_scalar,
            kv_bf16: f32_attention_kvbf16_scalar,
            kv_bf16_l2: f32_attention_kvbf16_l2prefetch_scalar,
        }
    };
    #[cfg(target_arch = "x86_64")]
    pub(crate) const AVX2: Self = {
        use mlak_kernels::attention::avx2::*;
        AttentionKernels {
            kv_f32: f32_attention_kvf32_avx2,
            kv_f32_paced: f32_attention_kvf32_paced_avx2,
            kv_f32_l2: f32_attention_kvf32_l2prefetch_avx2,
            kv_f16: f32_attention_kvf16_avx2,
            kv_f16_l2: f32_attention_kvf16_l2prefetch_avx2,
            kv_bf16: f32_attention_kvbf16_avx2,
            kv_bf16_l2: f32_attention_kvbf16_l2prefetch_avx2,
        }
    };
    #[cfg(target_arch = "x86_64")]
    pub(crate) const AVX512: Self = {
        use mlak_kernels::attention::avx512::*;
        AttentionKernels {
            kv_f32: f32_attention_kvf32_avx512,
            kv_f32_paced: f32_attention_kvf32_paced_avx512,
            kv_f32_l2: f32_attention_kvf32_l2prefetch_avx512,
            kv_f16: f32_attention_kvf16_avx512,
            kv_f16_l2: f32_attention_kvf16_l2prefetch_avx512,
            kv_bf16: f32_attention_kvbf16_avx512,
            kv_bf16_l2: f32_attention_kvbf16_l2prefetch_avx512,
        }
    };
    #[cfg(target_arch = "aarch64")]
    pub(crate) const NEON: Self = {
        use mlak_kernels::attention::neon::*;
        AttentionKernels {
            kv_f32: f32_attention_kvf32_neon,
            kv_f32_paced: f32_attention_kvf32_paced_neon,
            kv_f32_l2: f32_attention_kvf32_l2prefetch_neon,
            kv_f16: f32_attention_kvf16_neon,
            kv_f16_l2: f32_attention_kvf16_l2prefetch_neon,
            kv_bf16: f32_attention_kvbf16_neon,
            kv_bf16_l2: f32_attention_kvbf16_l2prefetch_neon,
        }
    };
}

/// Query rows per prefill task: a multiple of the 4- and 6-row GEMM tiles,
/// large enough that packing Kᵀ once per block costs little next to the
/// products, and small enough that the scores and accumulators stay in L2.
const PREFILL_ROWS: usize = 192;

/// A task range below this many keys is not split across threads: merging
/// costs about as much as attending a few hundred keys.
const MIN_SPLIT_KEYS: usize = 512;

/// Largest |position_offset| and largest position accepted, so that
/// position arithmetic cannot overflow i64.
const MAX_POSITION: i64 = 1 << 62;

/// Dimensions of an attention call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttentionShape {
    pub batch: usize,
    pub q_heads: usize,
    pub kv_heads: usize,
    pub q_len: usize,
    pub kv_len: usize,
    pub head_dim: usize,
    pub v_head_dim: usize,
}

impl AttentionShape {
    fn q_dims(&self) -> [usize; 4] {
        [self.batch, self.q_heads, self.q_len, self.head_dim]
    }
    fn k_dims(&self) -> [usize; 4] {
        [self.batch, self.kv_heads, self.kv_len, self.head_dim]
    }
    fn v_dims(&self) -> [usize; 4] {
        [self.batch, self.kv_heads, self.kv_len, self.v_head_dim]
    }
    fn o_dims(&self) -> [usize; 4] {
        [self.batch, self.q_heads, self.q_len, self.v_head_dim]
    }
    fn bias_dims(&self) -> [usize; 4] {
        [self.batch, self.q_heads, self.q_len, self.kv_len]
    }
    /// Number of logsumexp outputs, `B·Hq·Lq`.
    pub fn lse_len(&self) -> usize {
        self.batch * self.q_heads * self.q_len
    }
}

/// Returns the row-major strides of a tensor with dimensions `dims`.
pub fn contiguous_strides(dims: [usize; 4]) -> [usize; 4] {
    [dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1]
}

/// Score modifiers and masks of an attention call. `Default` gives plain
/// non-causal attention with scale 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionOptions {
    /// Factor applied to Q·Kᵀ, typically 1/sqrt(head_dim). Must be finite.
    pub scale: f32,
    /// Masks keys after the query's position.
    pub causal: bool,
    /// Shift of every query position; see the module documentation.
    pub position_offset: i64,
    /// Logit cap c of c·tanh(s/c); 0 disables it, else finite and > 0.
    pub softcap: f32,
    /// Sliding window in keys; 0 disables it.
    pub window: usize,
}

impl Default for AttentionOptions {
    fn default() -> Self {
        AttentionOptions { scale: 1.0, causal: false, position_offset: 0, softcap: 0.0, window: 0 }
    }
}

/// A validated call with raw pointers: what both the safe API and the C
/// ABI hand to [`run`].
pub(crate) struct RawAttention {
    pub shape: AttentionShape,
    pub q: *const f32,
    pub q_strides: [usize; 4],
    pub k: *const u8,
    pub k_strides: [usize; 4],
    pub v: *const u8,
    pub v_strides: [usize; 4],
    pub kv_dtype: Dtype,
    pub o: *mut f32,
    pub o_strides: [usize; 4],
    /// Contiguous `[B, Hq, Lq]`, or null.
    pub lse: *mut f32,
    pub options: AttentionOptions,
    /// Per-batch key lengths, each at most `kv_len`; empty for none.
    pub kv_lengths: Vec<usize>,
    /// Null for none.
    pub bias: *const f32,
    pub bias_strides: [usize; 4],
    /// `q_heads` slopes, or null.
    pub alibi: *const f32,
}

/// Element spans of every tensor of a call, for the slice or pointer
/// checks of the caller.
pub(crate) struct Spans {
    pub q: usize,
    pub k: usize,
    pub v: usize,
    pub o: usize,
    pub bias: usize,
}

/// Returns the number of elements a strided tensor spans (0 when empty),
/// checking that its byte size fits in isize.
fn tensor_span(name: &str, dims: [usize; 4], strides: [usize; 4], elem_bytes: usize) -> Result<usize> {
    if dims.contains(&0) {
        return Ok(0);
    }
    let mut last = Some(0usize);
    for (&n, &s) in dims.iter().zip(&strides) {
        last = last.and_then(|acc| (n - 1).checked_mul(s).and_then(|v| acc.checked_add(v)));
    }
    match last.and_then(|v| v.checked_add(1)) {
        Some(e) if e.checked_mul(elem_bytes).is_some_and(|b| b <= isize::MAX as usize) => Ok(e),
        _ => Err(Error::invalid(format!(
            "{name}: dims {dims:?} with strides {strides:?} span more than isize::MAX bytes"
        ))),
    }
}

/// Requires the last dimension to be contiguous, unless it has at most one
/// element or the tensor is empty.
fn check_last_stride(name: &str, dims: [usize; 4], strides: [usize; 4]) -> Result<()> {
    if dims[3] > 1 && strides[3] != 1 && !dims.contains(&0) {
        return Err(Error::invalid(format!(
            "{name}_strides[3] = {} is invalid; the last dimension must be contiguous (stride 1)",
            strides[3]
        )));
    }
    Ok(())
}

/// Rejects output strides under which two elements share an address, which
/// would make the output depend on write order.
fn check_injective(name: &str, dims: [usize; 4], strides: [usize; 4]) -> Result<()> {
    if dims.contains(&0) {
        return Ok(());
    }
    let mut order: Vec<(usize, usize)> =
        dims.iter().zip(&strides).filter(|(&n, _)| n > 1).map(|(&n, &s)| (s, n)).collect();
    order.sort_unstable();
    let mut extent = 1usize;
    for (s, n) in order {
        if s < extent {
            return Err(Error::invalid(format!(
                "{name}_strides = {strides:?} make two elements of dims {dims:?} share an address; \
                 each stride must be at least the extent of the smaller ones"
            )));
        }
        extent = extent.max((n - 1) * s + extent);
    }
    Ok(())
}

impl RawAttention {
    /// Checks shape, strides and scalar options and returns the spans. The
    /// caller checks pointers or slices against them.
    pub(crate) fn check(&self) -> Result<Spans> {
        let sh = &self.shape;
        let o = &self.options;
        if sh.kv_heads == 0 && sh.q_heads > 0 {
            return Err(Error::invalid(format!("kv_heads = 0 is invalid with q_heads = {} > 0", sh.q_heads)));
        }
        if sh.kv_heads > 0 && !sh.q_heads.is_multiple_of(sh.kv_heads) {
            return Err(Error::invalid(format!(
                "q_heads = {} is not a multiple of kv_heads = {}; grouped-query attention needs it to be",
                sh.q_heads, sh.kv_heads
            )));
        }

        if sh.head_dim == 0 || sh.v_head_dim == 0 {
            return Err(Error::invalid(format!(
                "head_dim = {} and v_head_dim = {} must both be >= 1",
                sh.head_dim, sh.v_head_dim
            )));
        }
        if !o.scale.is_finite() {
            return Err(Error::invalid(format!("scale = {} is invalid; it must be finite", o.scale)));
        }
        if !(o.softcap == 0.0 || (o.softcap > 0.0 && o.softcap.is_finite())) {
            return Err(Error::invalid(format!(
                "softcap = {} is invalid; use 0 to disable it or a finite value > 0",
                o.softcap
            )));
        }
        if !(-MAX_POSITION..=MAX_POSITION).contains(&o.position_offset) {
            return Err(Error::invalid(format!(
                "position_offset = {} is invalid; its magnitude must be at most 2^62",
                o.position_offset
            )));
        }

        let elem = self.kv_dtype.size();
        check_last_stride("q", sh.q_dims(), self.q_strides)?;
        check_last_stride("k", sh.k_dims(), self.k_strides)?;
        check_last_stride("v", sh.v_dims(), self.v_strides)?;
        check_last_stride("o", sh.o_dims(), self.o_strides)?;
        let q = tensor_span("q", sh.q_dims(), self.q_strides, 4)?;
        let k = tensor_span("k", sh.k_dims(), self.k_strides, elem)?;
        let v = tensor_span("v", sh.v_dims(), self.v_strides, elem)?;
        let o_span = tensor_span("o", sh.o_dims(), self.o_strides, 4)?;
        check_injective("o", sh.o_dims(), self.o_strides)?;
        let bias = if self.bias.is_null() {
            0
        } else {
            check_last_stride("bias", sh.bias_dims(), self.bias_strides)?;
            tensor_span("bias", sh.bias_dims(), self.bias_strides, 4)?
        };
        validate::span("lse", 1, sh.lse_len(), sh.lse_len(), 4)?;

        let max_pos = (sh.kv_len as i128) + (sh.q_len as i128) + (o.position_offset.unsigned_abs() as i128);
        if max_pos > MAX_POSITION as i128 {
            return Err(Error::invalid(format!(
                "kv_len = {} and q_len = {} with position_offset = {} exceed the position limit 2^62",
                sh.kv_len, sh.q_len, o.position_offset
            )));
        }
        if !self.kv_lengths.is_empty() {
            if self.kv_lengths.len() != sh.batch {
                return Err(Error::invalid(format!(
                    "kv_lengths has {} entries but batch = {}",
                    self.kv_lengths.len(),
                    sh.batch
                )));
            }
            for (b, &n) in self.kv_lengths.iter().enumerate() {
                if n > sh.kv_len {
                    return Err(Error::invalid(format!(
                        "kv_lengths[{b}] = {n} exceeds kv_len = {}; K and V hold only kv_len keys",
                        sh.kv_len
                    )));
                }
            }
        }
        Ok(Spans { q, k, v, o: o_span, bias })
    }
}

/// The division of a call into tasks.
struct Plan {
    group: usize,
    /// Whether the tasks take the decode path, which packs no Kᵀ.
    decode: bool,
    positions_per_task: usize,
    position_blocks: usize,
    splits: usize,
    /// Keys per split, a multiple of `KV_BLOCK`.
    split_len: usize,
}

impl Plan {
    fn new(sh: &AttentionShape, threads: usize) -> Plan {
        let group = sh.q_heads / sh.kv_heads.max(1);
        let decode = group * sh.q_len <= DOT_ROWS_MAX;
        let positions_per_task = if decode { sh.q_len.max(1) } else { (PREFILL_ROWS / group).max(1) };
        let position_blocks = sh.q_len.div_ceil(positions_per_task);
        let base = sh.batch * sh.kv_heads * position_blocks;
        let mut splits = 1;
        if base > 0 && base < threads && sh.kv_len >= 2 * MIN_SPLIT_KEYS {
            splits = threads.div_ceil(base).min(sh.kv_len / MIN_SPLIT_KEYS);
        }
        let split_len = sh.kv_len.div_ceil(splits).next_multiple_of(KV_BLOCK).max(KV_BLOCK);
        Plan { group, decode, positions_per_task, position_blocks, splits, split_len }
    }

    fn tasks(&self, sh: &AttentionShape) -> usize {
        sh.batch * sh.kv_heads * self.position_blocks * self.splits
    }
}

/// Returns the bytes of K and V that a call reads, at `elem` bytes per
/// element: every key up to the batch's key length, saturating. Above the
/// L2 cache, f32 decode takes the entry point with paced prefetch, which
/// reads DRAM faster and L3 slower.
fn kv_bytes(sh: &AttentionShape, kv_lengths: &[usize], elem: usize) -> usize {
    let keys = if kv_lengths.is_empty() {
        sh.batch.saturating_mul(sh.kv_len)
    } else {
        kv_lengths.iter().fold(0usize, |a, &n| a.saturating_add(n))
    };
    let row = sh.head_dim.saturating_add(sh.v_head_dim).saturating_mul(elem);
    keys.saturating_mul(sh.kv_heads).saturating_mul(row)
}

/// Runs a validated call.
///
/// # Safety
///
/// Every pointer of `p` covers the span that [`RawAttention::check`]
/// returned for it (`lse` covers `B·Hq·Lq` values when not null, `alibi`
/// `q_heads` values), `o` and `lse` overlap no input and not each other,
/// and `k` and `v` hold elements of `kv_dtype`.
pub(crate) unsafe fn run(p: &RawAttention) -> Result<()> {
    // SAFETY: forwarded from the caller.
    unsafe { run_entry(p, Entry::of(p, crate::gemm::cache_sizes().l2, crate::dispatch::cpu_is_intel())) }
}

/// The entry point of the level's table that a call takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    F32,
    F32Paced,
    F32L2,
    F16,
    F16L2,
    Bf16,
    Bf16L2,
}

impl Entry {
    /// Every entry point, for the tests.
    #[cfg(test)]
    const ALL: [Entry; 7] =
        [Entry::F32, Entry::F32Paced, Entry::F32L2, Entry::F16, Entry::F16L2, Entry::Bf16, Entry::Bf16L2];

    /// Returns the entry point for `p` on a machine whose L2 cache has `l2`
    /// bytes. On an Intel CPU every K/V type takes the entry point that
    /// prefetches into L2. It read K and V from DRAM faster on two Intel
    /// Xeon models (CPUID model 167 and 207) and slower on Zen 5.
    ///
    /// Elsewhere, f32 K and V larger than L2 take the paced entry point. In
    /// a model's decode step, every other layer runs between two calls on
    /// one layer's cache and evicts it from L3, so K and V come from DRAM.
    /// On one Zen 5 core (Hq 32, Hkv 8, D 128, medians), paced prefetch read
    /// them from DRAM 7 to 9 % faster at 256, 512 and 2048 keys. The same
    /// calls repeated on one cache that stays in L3 read 15 to 18 % slower
    /// paced (at 2048 keys, 56 GB/s against 68).
    ///
    /// NOTE: the vendor rule rests on those three CPUs. Intel client cores,
    /// older Xeons and other AMD cores were not measured.
    fn of(p: &RawAttention, l2: usize, intel: bool) -> Entry {
        match p.kv_dtype {
            Dtype::F32 if intel => Entry::F32L2,
            Dtype::F32 if kv_bytes(&p.shape, &p.kv_lengths, 4) > l2 => Entry::F32Paced,
            Dtype::F32 => Entry::F32,
            Dtype::F16 if intel => Entry::F16L2,
            Dtype::F16 => Entry::F16,
            Dtype::Bf16 if intel => Entry::Bf16L2,
            Dtype::Bf16 => Entry::Bf16,
        }
    }

    /// Returns the element type of K and V that the entry point reads.
    #[cfg(test)]
    fn dtype(self) -> Dtype {
        match self {
            Entry::F32 | Entry::F32Paced | Entry::F32L2 => Dtype::F32,
            Entry::F16 | Entry::F16L2 => Dtype::F16,
            Entry::Bf16 | Entry::Bf16L2 => Dtype::Bf16,
        }
    }
}

/// Runs a validated call through `entry`, which must match its K/V type.
///
/// # Safety
///
/// As for [`run`].
unsafe fn run_entry(p: &RawAttention, entry: Entry) -> Result<()> {
    let table = kernels()?;
    let f = match entry {
        Entry::F32 => table.attention.kv_f32,
        Entry::F32Paced => table.attention.kv_f32_paced,
        Entry::F32L2 => table.attention.kv_f32_l2,
        Entry::F16 => table.attention.kv_f16,
        Entry::F16L2 => table.attention.kv_f16_l2,
        Entry::Bf16 => table.attention.kv_bf16,
        Entry::Bf16L2 => table.attention.kv_bf16_l2,
    };
    let sh = p.shape;
    if sh.batch * sh.q_heads * sh.q_len == 0 {
        return Ok(());
    }
    let threads = num_threads()?;
    let plan = Plan::new(&sh, threads);
    let rows = plan.group * plan.positions_per_task;
    let scratch = scratch_len(rows, sh.head_dim, sh.v_head_dim);

    // With split KV, every split writes a normalized partial output and its
    // logsumexp here, merged below.
    let rows_total = sh.lse_len();
    let mut partial_o = Vec::new();
    let mut partial_lse = Vec::new();
    if plan.splits > 1 {
        let n = plan.splits * rows_total;
        let bytes_ok = n.checked_mul(sh.v_head_dim).is_some();
        if !bytes_ok
            || partial_o.try_reserve_exact(n * sh.v_head_dim).is_err()
            || partial_lse.try_reserve_exact(n).is_err()
        {
            return Err(Error::new(
                Status::AllocationFailed,
                format!("split-KV partials of {n} rows do not fit in memory"),
            ));
        }
        partial_o.resize(n * sh.v_head_dim, 0.0f32);
        partial_lse.resize(n, 0.0f32);
    }
    let partial_o_ptr = SharedPtr(partial_o.as_mut_ptr());
    let partial_lse_ptr = SharedPtr(partial_lse.as_mut_ptr());
    let q = SharedPtr(p.q as *mut f32);
    let (k, v) = (SharedPtr(p.k as *mut u8), SharedPtr(p.v as *mut u8));
    let o = SharedPtr(p.o);
    let lse = SharedPtr(p.lse);
    let bias = SharedPtr(p.bias as *mut f32);
    let alibi = SharedPtr(p.alibi as *mut f32);
    let elem = p.kv_dtype.size();
    let opts = p.options;
    let kv_lengths: &[usize] = &p.kv_lengths;
    let (q_strides, k_strides, v_strides) = (p.q_strides, p.k_strides, p.v_strides);
    let (o_strides, bias_strides) = (p.o_strides, p.bias_strides);

    // One scratch per range of tasks, taken before any output is written.
    let workers = threads.min(plan.tasks(&sh)).max(1);
    // Prefill tasks of one thread share a cache of packed Kᵀ blocks after
    // the scratch.
    let cache = if plan.decode { 0 } else { kt_cache_len(sh.head_dim) };
    let bufs = crate::workspace::PerRange::new(workers, scratch + cache, "attention scratch")?;

    parallel_for(plan.tasks(&sh), 1, threads, |range| {
        let mut buf = bufs.get();
        let kt_cache = if plan.decode {
            std::ptr::null_mut()
        } else {
            // SAFETY: the buffer covers scratch + cache f32. The reset
            // clears the tags that an earlier call may have left there.
            unsafe {
                let c = buf.as_mut_ptr().add(scratch);
                kt_cache_reset(c, sh.head_dim);
                c
            }
        };
        for t in range {
            let split = t % plan.splits;
            let rest = t / plan.splits;
            let pb = rest % plan.position_blocks;
            let rest = rest / plan.position_blocks;
            let kvh = rest % sh.kv_heads;
            let b = rest / sh.kv_heads;
            let h0 = kvh * plan.group;
            let i0 = pb * plan.positions_per_task;
            let positions = plan.positions_per_task.min(sh.q_len - i0);
            let kv_len_b = kv_lengths.get(b).copied().unwrap_or(sh.kv_len);
            let kv_begin = (split * plan.split_len).min(kv_len_b);
            let kv_end = ((split + 1) * plan.split_len).min(kv_len_b);
            let first_pos = kv_len_b as i64 - sh.q_len as i64 + i0 as i64 + opts.position_offset;

            let (out, out_head_stride, out_row_stride, lse_out, lse_head_stride) = if plan.splits > 1 {
                let row0 = (split * sh.batch * sh.q_heads + b * sh.q_heads + h0) * sh.q_len + i0;
                // SAFETY: row0 + group·q_len rows lie inside the partial
                // buffers, which hold splits·B·Hq·Lq rows.
                unsafe {
                    (
                        partial_o_ptr.get().add(row0 * sh.v_head_dim),
                        sh.q_len * sh.v_head_dim,
                        sh.v_head_dim,
                        partial_lse_ptr.get().add(row0),
                        sh.q_len,
                    )
                }
            } else {
                let os = o_strides;
                // SAFETY: (b, h0, i0) is inside O, and inside lse when not null.
                unsafe {
                    let out = o.get().add(b * os[0] + h0 * os[1] + i0 * os[2]);
                    let l = if lse.get().is_null() {
                        std::ptr::null_mut()
                    } else {
                        lse.get().add((b * sh.q_heads + h0) * sh.q_len + i0)
                    };
                    (out, os[1], os[2], l, sh.q_len)
                }
            };
            // SAFETY: every offset names an element inside its tensor, as
            // (b, h0, i0) and (b, kvh) are in range.
            let task = unsafe {
                AttentionTask {
                    q: q.get().add(b * q_strides[0] + h0 * q_strides[1] + i0 * q_strides[2]),
                    q_head_stride: q_strides[1],
                    q_row_stride: q_strides[2],
                    k: k.get().add((b * k_strides[0] + kvh * k_strides[1]) * elem),
                    k_row_stride: k_strides[2],
                    v: v.get().add((b * v_strides[0] + kvh * v_strides[1]) * elem),
                    v_row_stride: v_strides[2],
                    group: plan.group,
                    positions,
                    head_dim: sh.head_dim,
                    v_head_dim: sh.v_head_dim,
                    scale: opts.scale,
                    softcap: opts.softcap,
                    first_pos,
                    kv_begin,
                    kv_end,
                    causal: opts.causal,
                    window: opts.window,
                    bias: if bias.get().is_null() {
                        std::ptr::null()
                    } else {
                        let bs = bias_strides;
                        bias.get().add(b * bs[0] + h0 * bs[1] + i0 * bs[2])
                    },
                    bias_head_stride: bias_strides[1],
                    bias_row_stride: bias_strides[2],
                    alibi: if alibi.get().is_null() { std::ptr::null() } else { alibi.get().add(h0) },
                    out,
                    out_head_stride,
                    out_row_stride,
                    lse: lse_out,
                    lse_head_stride,
                    lse_row_stride: 1,
                    kt_cache,
                }
            };
            // SAFETY: the task addresses only its own output rows, which no
            // other task writes; the scratch buffer and the Kᵀ cache after
            // it are this thread's, and the cache was reset for this call.
            unsafe { f(&task, buf.as_mut_ptr()) };
        }
    });

    if plan.splits > 1 {
        // SAFETY: the caller's contract covers O and lse; the partials hold
        // splits·B·Hq·Lq rows.
        unsafe { merge_splits(p, plan.splits, &partial_o, &partial_lse) };
    }
    Ok(())
}

/// Combines the normalized partial outputs of the KV splits by their
/// logsumexp: O = Σ e^(lse_s − lse)·O_s with lse = log Σ e^(lse_s).
///
/// # Safety
///
/// As for [`run`].
unsafe fn merge_splits(p: &RawAttention, splits: usize, partial_o: &[f32], partial_lse: &[f32]) {
    let sh = p.shape;
    let dv = sh.v_head_dim;
    let rows = sh.lse_len();
    let mut acc = vec![0.0f32; dv];
    for row in 0..rows {
        let i = row % sh.q_len;
        let h = (row / sh.q_len) % sh.q_heads;
        let b = row / (sh.q_len * sh.q_heads);
        let lses: Vec<f32> = (0..splits).map(|s| partial_lse[s * rows + row]).collect();
        let nan = lses.iter().any(|v| v.is_nan());
        let max = lses.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let (total_lse, out): (f32, &[f32]) = if nan {
            acc.fill(f32::NAN);
            (f32::NAN, &acc)
        } else if max == f32::NEG_INFINITY {
            acc.fill(0.0);
            (f32::NEG_INFINITY, &acc)
        } else {
            acc.fill(0.0);
            let mut total = 0.0f32;
            for (s, &l) in lses.iter().enumerate() {
                let w = (l - max).exp();
                if w == 0.0 {
                    continue;
                }
                total += w;
                let src = &partial_o[(s * rows + row) * dv..][..dv];
                for (a, &x) in acc.iter_mut().zip(src) {
                    *a += w * x;
                }
            }
            let inv = 1.0 / total;
            acc.iter_mut().for_each(|a| *a *= inv);
            (max + total.ln(), &acc)
        };
        // SAFETY: (b, h, i) is inside O and lse by the caller's contract.
        unsafe {
            let dst = p.o.add(b * p.o_strides[0] + h * p.o_strides[1] + i * p.o_strides[2]);
            std::ptr::copy_nonoverlapping(out.as_ptr(), dst, dv);
            if !p.lse.is_null() {
                *p.lse.add(row) = total_lse;
            }
        }
    }
}

/// K or V data of one of the supported element types.
#[derive(Clone, Copy, Debug)]
pub enum KvSlice<'a> {
    F32(&'a [f32]),
    F16(&'a [half::f16]),
    Bf16(&'a [half::bf16]),
}

impl KvSlice<'_> {
    fn dtype(&self) -> Dtype {
        match self {
            KvSlice::F32(_) => Dtype::F32,
            KvSlice::F16(_) => Dtype::F16,
            KvSlice::Bf16(_) => Dtype::Bf16,
        }
    }
    fn len(&self) -> usize {
        match self {
            KvSlice::F32(s) => s.len(),
            KvSlice::F16(s) => s.len(),
            KvSlice::Bf16(s) => s.len(),
        }
    }
    fn as_ptr(&self) -> *const u8 {
        match self {
            KvSlice::F32(s) => s.as_ptr().cast(),
            KvSlice::F16(s) => s.as_ptr().cast(),
            KvSlice::Bf16(s) => s.as_ptr().cast(),
        }
    }
}

/// Inputs of [`attention`]. Strides are in elements; the last one of each
/// tensor must be 1. `bias`, when given, is `[B, Hq, Lq, Lkv]` at
/// `bias_strides`, where a stride of 0 broadcasts that dimension.
#[derive(Clone, Copy, Debug)]
pub struct AttentionArgs<'a> {
    pub shape: AttentionShape,
    pub q: &'a [f32],
    pub q_strides: [usize; 4],
    pub k: KvSlice<'a>,
    pub k_strides: [usize; 4],
    pub v: KvSlice<'a>,
    pub v_strides: [usize; 4],
    pub options: AttentionOptions,
    /// Per-batch key lengths, each at most `kv_len`.
    pub kv_lengths: Option<&'a [usize]>,
    pub bias: Option<&'a [f32]>,
    pub bias_strides: [usize; 4],
    /// One ALiBi slope per query head.
    pub alibi_slopes: Option<&'a [f32]>,
}

impl<'a> AttentionArgs<'a> {
    /// Returns arguments for contiguous Q, K and V of `shape` with default
    /// options.
    pub fn contiguous(shape: AttentionShape, q: &'a [f32], k: KvSlice<'a>, v: KvSlice<'a>) -> Self {
        AttentionArgs {
            shape,
            q,
            q_strides: contiguous_strides(shape.q_dims()),
            k,
            k_strides: contiguous_strides(shape.k_dims()),
            v,
            v_strides: contiguous_strides(shape.v_dims()),
            options: AttentionOptions::default(),
            kv_lengths: None,
            bias: None,
            bias_strides: [0; 4],
            alibi_slopes: None,
        }
    }
}

/// Computes fused attention into `o` (`[B, Hq, Lq, Dv]` at `o_strides`)
/// and, when given, the natural-log logsumexp of each row's scores into
/// `lse` (contiguous `[B, Hq, Lq]`). See the module documentation for
/// positions, masks and modifiers.
///
/// Edge policy: a row whose keys are all masked (including every row when
/// Lkv = 0, and the leading rows of a causal call with Lq > Lkv) outputs
/// zeros and lse −inf. K and V rows outside every query row's key range
/// are never read, so NaN in unused cache slots cannot leak. A NaN score
/// makes its row NaN. A NaN in a V row that some query row attends also
/// reaches the rows that mask it when both fall in the same block of up to
/// 192 query rows, because their probability 0 times NaN is NaN.
///
/// Errors: shapes whose Hq is not a multiple of Hkv, a non-contiguous last
/// dimension, slices too short for their strided spans, K and V of
/// different element types, output strides that alias, non-finite scale,
/// a negative or non-finite softcap, and key lengths above `kv_len`.
pub fn attention(args: &AttentionArgs, o: &mut [f32], o_strides: [usize; 4], lse: Option<&mut [f32]>) -> Result<()> {
    if args.k.dtype() != args.v.dtype() {
        return Err(Error::invalid(format!(
            "k is {} but v is {}; they must have the same dtype",
            args.k.dtype().name(),
            args.v.dtype().name()
        )));
    }
    let lse_ptr = match lse {
        Some(l) => {
            validate::slice_len("lse", l.len(), args.shape.lse_len())?;
            l.as_mut_ptr()
        }
        None => std::ptr::null_mut(),
    };

    let raw = RawAttention {
        shape: args.shape,
        q: args.q.as_ptr(),
        q_strides: args.q_strides,
        k: args.k.as_ptr(),
        k_strides: args.k_strides,
        v: args.v.as_ptr(),
        v_strides: args.v_strides,
        kv_dtype: args.k.dtype(),
        o: o.as_mut_ptr(),
        o_strides,
        lse: lse_ptr,
        options: args.options,
        kv_lengths: args.kv_lengths.map(<[usize]>::to_vec).unwrap_or_default(),
        bias: args.bias.map_or(std::ptr::null(), <[f32]>::as_ptr),
        bias_strides: args.bias_strides,
        alibi: args.alibi_slopes.map_or(std::ptr::null(), <[f32]>::as_ptr),
    };
    let spans = raw.check()?;

    validate::slice_len("q", args.q.len(), spans.q)?;
    validate::slice_len("k", args.k.len(), spans.k)?;
    validate::slice_len("v", args.v.len(), spans.v)?;
    validate::slice_len("o", o.len(), spans.o)?;
    if let Some(b) = args.bias {
        validate::slice_len("bias", b.len(), spans.bias)?;
    }
    if let Some(s) = args.alibi_slopes {
        validate::slice_len("alibi_slopes", s.len(), args.shape.q_heads)?;
    }
    // SAFETY: every slice covers its span, the outputs are distinct mutable
    // slices, and the element type matches the K and V slices.
    unsafe { run(&raw) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::{isa_supported, last_dispatched_isa, with_isa, Isa};

    fn shape(q_heads: usize, kv_heads: usize, q_len: usize, kv_len: usize, d: usize, dv: usize) -> AttentionShape {
        AttentionShape { batch: 1, q_heads, kv_heads, q_len, kv_len, head_dim: d, v_head_dim: dv }
    }

    /// Builds a call on contiguous tensors with default options and scale
    /// 1/sqrt(D).
    fn raw(sh: AttentionShape, q: &[f32], k: &[f32], v: &[f32], o: &mut [f32], lse: &mut [f32]) -> RawAttention {
        RawAttention {
            shape: sh,
            q: q.as_ptr(),
            q_strides: contiguous_strides(sh.q_dims()),
            k: k.as_ptr().cast(),
            k_strides: contiguous_strides(sh.k_dims()),
            v: v.as_ptr().cast(),
            v_strides: contiguous_strides(sh.v_dims()),
            kv_dtype: Dtype::F32,
            o: o.as_mut_ptr(),
            o_strides: contiguous_strides(sh.o_dims()),
            lse: lse.as_mut_ptr(),
            options: AttentionOptions { scale: 1.0 / (sh.head_dim as f32).sqrt(), ..AttentionOptions::default() },
            kv_lengths: Vec::new(),
            bias: std::ptr::null(),
            bias_strides: [0; 4],
            alibi: std::ptr::null(),
        }
    }

    #[test]
    fn entry_by_size_and_vendor() {
        let sh = AttentionShape { batch: 2, ..shape(4, 2, 1, 100, 64, 32) };
        let (q, kv) = (vec![0.0f32; 2 * 4 * 64], vec![0.0f32; 2 * 2 * 100 * 64]);
        let (mut o, mut lse) = (vec![0.0f32; 2 * 4 * 32], vec![0.0f32; 2 * 4]);
        let mut p = raw(sh, &q, &kv, &kv, &mut o, &mut lse);
        // 2 batches × 2 KV heads × 100 keys × (64 + 32) f32.
        let bytes = 2 * 2 * 100 * 96 * 4;
        assert_eq!(kv_bytes(&p.shape, &p.kv_lengths, 4), bytes);
        assert_eq!(Entry::of(&p, bytes, false), Entry::F32);
        assert_eq!(Entry::of(&p, bytes - 1, false), Entry::F32Paced);
        assert_eq!(Entry::of(&p, bytes - 1, true), Entry::F32L2);
        assert_eq!(Entry::of(&p, bytes, true), Entry::F32L2);
        p.kv_lengths = vec![10, 20];
        assert_eq!(kv_bytes(&p.shape, &p.kv_lengths, 4), 30 * 2 * 96 * 4);
        assert_eq!(Entry::of(&p, 30 * 2 * 96 * 4, false), Entry::F32);
        p.kv_dtype = Dtype::F16;
        assert_eq!(Entry::of(&p, 0, false), Entry::F16);
        assert_eq!(Entry::of(&p, 0, true), Entry::F16L2);
        p.kv_dtype = Dtype::Bf16;
        assert_eq!(Entry::of(&p, 0, false), Entry::Bf16);
        assert_eq!(Entry::of(&p, 0, true), Entry::Bf16L2);
        let huge = AttentionShape { batch: usize::MAX, ..sh };
        assert_eq!(kv_bytes(&huge, &[], 4), usize::MAX);
    }

    /// The entry points of one K/V element type differ only in their
    /// decode prefetch, on every level, for decode (where the cursor runs)
    /// and prefill. The paced one keeps the block order, so its outputs and
    /// logsumexps must equal the plain one's bit for bit. The L2 one takes
    /// the decode blocks in one run instead of two, so its online softmax
    /// rounds in another order. Each of the at most 11 blocks adds a few
    /// roundings of at most EPS relative to values of magnitude at most 1
    /// (outputs) or 8 (logsumexps), so 8·blocks·EPS times that magnitude
    /// bounds the difference.
    #[test]
    fn entries_of_one_dtype_agree() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        for isa in [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon] {
            if !isa_supported(isa) {
                // Straight to stderr, which libtest does not capture, so
                // the skip shows in every run.
                use std::io::Write;
                let test = "entries_of_one_dtype_agree";
                let _ = writeln!(std::io::stderr(), "SKIPPED: {test} on {}: not supported by this CPU", isa.name());
                continue;
            }
            // GQA 4 decode with a partial last block, odd head dims, MHA,
            // and a prefill shape that takes the packed path.
            for (hq, hkv, lq, lkv, d, dv) in
                [(8, 2, 1, 700, 128, 128), (4, 1, 2, 131, 72, 40), (3, 3, 1, 64, 16, 16), (2, 1, 40, 90, 32, 32)]
            {
                let sh = shape(hq, hkv, lq, lkv, d, dv);
                let q: Vec<f32> = (0..hq * lq * d).map(|_| next()).collect();
                let k: Vec<f32> = (0..hkv * lkv * d).map(|_| next()).collect();
                let v: Vec<f32> = (0..hkv * lkv * dv).map(|_| next()).collect();
                let half = |x: &[f32], dtype: Dtype| -> Vec<u16> {
                    x.iter()
                        .map(|&e| match dtype {
                            Dtype::F16 => half::f16::from_f32(e).to_bits(),
                            _ => half::bf16::from_f32(e).to_bits(),
                        })
                        .collect()
                };
                for dtype in [Dtype::F32, Dtype::F16, Dtype::Bf16] {
                    let (k16, v16) = (half(&k, dtype), half(&v, dtype));
                    let mut outs = Vec::new();
                    for entry in Entry::ALL.into_iter().filter(|e| e.dtype() == dtype) {
                        let (mut o, mut lse) = (vec![0.0f32; hq * lq * dv], vec![0.0f32; hq * lq]);
                        let mut p = raw(sh, &q, &k, &v, &mut o, &mut lse);
                        if dtype != Dtype::F32 {
                            (p.k, p.v, p.kv_dtype) = (k16.as_ptr().cast(), v16.as_ptr().cast(), dtype);
                        }
                        p.check().expect("a valid call");
                        // SAFETY: every buffer contains its contiguous tensor
                        // of the call's element type, which `check` accepted,
                        // and the outputs are separate vectors.
                        with_isa(isa, || unsafe { run_entry(&p, entry) }).unwrap().unwrap();
                        assert_eq!(last_dispatched_isa(), Some(isa), "the call did not dispatch to {}", isa.name());
                        outs.push((entry, o, lse));
                    }
                    assert!(outs.len() >= 2, "{dtype:?} has {} entry points", outs.len());
                    let (first, o0, lse0) = &outs[0];
                    let blocks = lkv.div_ceil(KV_BLOCK) as f32;
                    for (entry, o, lse) in &outs[1..] {
                        let l2 = matches!(entry, Entry::F32L2 | Entry::F16L2 | Entry::Bf16L2);
                        for (name, a, b, scale) in [("o", o0, o, 1.0), ("lse", lse0, lse, 8.0)] {
                            let tol = if l2 { 8.0 * blocks * f32::EPSILON * scale } else { 0.0 };
                            let differs = |i: usize| a[i].to_bits() != b[i].to_bits() && (a[i] - b[i]).abs() > tol;
                            if let Some(i) = (0..a.len()).find(|&i| differs(i)) {
                                panic!(
                                    "{}: {name}[{i}] {first:?} {} {entry:?} {}, tolerance {tol:e} ({sh:?})",
                                    isa.name(),
                                    a[i],
                                    b[i]
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
