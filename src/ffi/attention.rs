//! C export of fused attention.

use super::guard;
use crate::attention::{self as attn, AttentionOptions, AttentionShape, RawAttention};
use crate::dtype::Dtype;
use crate::error::{Error, Result, Status};
use crate::validate;

/// Arguments of `mlak_attention`. Dimensions and strides are in elements.
/// The last stride of every tensor must be 1 unless that dimension has at
/// most one element, and no stride may be negative. A stride of 0 repeats
/// an input along that dimension.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AttentionParams {
    pub batch: i64,
    /// Query heads Hq, a multiple of `kv_heads`.
    pub q_heads: i64,
    /// Key/value heads Hkv; query head h reads KV head h / (Hq / Hkv).
    pub kv_heads: i64,
    pub q_len: i64,
    pub kv_len: i64,
    /// D of Q and K, >= 1.
    pub head_dim: i64,
    /// Dv of V and O, >= 1.
    pub v_head_dim: i64,
    /// Q `[batch, q_heads, q_len, head_dim]`.
    pub q: *const f32,
    pub q_strides: [i64; 4],
    /// K `[batch, kv_heads, kv_len, head_dim]` of `kv_dtype`.
    pub k: *const core::ffi::c_void,
    pub k_strides: [i64; 4],
    /// V `[batch, kv_heads, kv_len, v_head_dim]` of `kv_dtype`.
    pub v: *const core::ffi::c_void,
    pub v_strides: [i64; 4],
    /// A `mlak_dtype` value: the element type of both K and V.
    pub kv_dtype: u32,
    /// O `[batch, q_heads, q_len, v_head_dim]`; no two elements may share
    /// an address.
    pub o: *mut f32,
    pub o_strides: [i64; 4],
    /// Contiguous `[batch, q_heads, q_len]` natural-log logsumexp of each
    /// row's scores, or NULL.
    pub lse: *mut f32,
    /// Factor on Q·Kᵀ, typically 1/sqrt(head_dim); finite.
    pub scale: f32,
    /// Masks key j for query position p when j > p.
    pub causal: bool,
    /// Query i of batch b sits at KV position
    /// kv_len_b − q_len + i + position_offset (|offset| <= 2^62).
    pub position_offset: i64,
    /// `batch` key lengths, each in 0 ..= kv_len, or NULL for kv_len.
    pub kv_lengths: *const i64,
    /// Additive bias `[batch, q_heads, q_len, kv_len]`, or NULL.
    pub bias: *const f32,
    pub bias_strides: [i64; 4],
    /// `q_heads` ALiBi slopes, or NULL; adds −slope·|p − j|.
    pub alibi_slopes: *const f32,
    /// Logit cap c of c·tanh(s/c); 0 disables it.
    pub softcap: f32,
    /// Sliding window w in keys; 0 disables it, else key j is masked when
    /// p − j >= w, and also when j − p >= w without causal masking.
    pub window: i64,
}

fn strides(name: &str, s: [i64; 4]) -> Result<[usize; 4]> {
    let mut out = [0usize; 4];
    for (i, (&v, o)) in s.iter().zip(&mut out).enumerate() {
        *o = usize::try_from(v)
            .map_err(|_| Error::invalid(format!("{name}[{i}] = {v} is negative; strides must be >= 0")))?;
    }
    Ok(out)
}

fn bytes(p: *const u8, elems: usize, elem_bytes: usize) -> (*const u8, usize) {
    (p, elems * elem_bytes)
}

/// Converts and checks the C arguments, including every pointer.
fn raw_from_params(p: &AttentionParams) -> Result<RawAttention> {
    let shape = AttentionShape {
        batch: validate::dim("batch", p.batch)?,
        q_heads: validate::dim("q_heads", p.q_heads)?,
        kv_heads: validate::dim("kv_heads", p.kv_heads)?,
        q_len: validate::dim("q_len", p.q_len)?,
        kv_len: validate::dim("kv_len", p.kv_len)?,
        head_dim: validate::dim("head_dim", p.head_dim)?,
        v_head_dim: validate::dim("v_head_dim", p.v_head_dim)?,
    };
    let kv_dtype = Dtype::from_code(p.kv_dtype).ok_or_else(|| {
        Error::invalid(format!("kv_dtype = {} is not a mlak_dtype value; valid values are 0 to 2", p.kv_dtype))
    })?;
    let window = usize::try_from(p.window)
        .map_err(|_| Error::invalid(format!("window = {} is negative; use 0 to disable it", p.window)))?;
    let mut kv_lengths = Vec::new();
    if !p.kv_lengths.is_null() {
        validate::pointer("kv_lengths", p.kv_lengths, shape.batch)?;
        for b in 0..shape.batch {
            // SAFETY: the caller provides `batch` readable values at a
            // non-NULL, aligned pointer.
            let n = unsafe { p.kv_lengths.add(b).read() };
            kv_lengths.push(
                usize::try_from(n)
                    .map_err(|_| Error::invalid(format!("kv_lengths[{b}] = {n} is negative; lengths must be >= 0")))?,
            );
        }
    }
    let raw = RawAttention {
        shape,
        q: p.q,
        q_strides: strides("q_strides", p.q_strides)?,
        k: p.k.cast(),
        k_strides: strides("k_strides", p.k_strides)?,
        v: p.v.cast(),
        v_strides: strides("v_strides", p.v_strides)?,
        kv_dtype,
        o: p.o,
        o_strides: strides("o_strides", p.o_strides)?,
        lse: p.lse,
        options: AttentionOptions {
            scale: p.scale,
            causal: p.causal,
            position_offset: p.position_offset,
            softcap: p.softcap,
            window,
        },
        kv_lengths,
        bias: p.bias,
        bias_strides: strides("bias_strides", p.bias_strides)?,
        alibi: p.alibi_slopes,
    };
    let spans = raw.check()?;

    let elem = kv_dtype.size();
    validate::pointer("q", raw.q, spans.q)?;
    match kv_dtype {
        Dtype::F32 => {
            validate::pointer("k", raw.k.cast::<f32>(), spans.k)?;
            validate::pointer("v", raw.v.cast::<f32>(), spans.v)?;
        }
        Dtype::F16 | Dtype::Bf16 => {
            validate::pointer("k", raw.k.cast::<u16>(), spans.k)?;
            validate::pointer("v", raw.v.cast::<u16>(), spans.v)?;
        }
    }
    validate::pointer("o", raw.o, spans.o)?;
    if !raw.bias.is_null() {
        validate::pointer("bias", raw.bias, spans.bias)?;
    }
    if !raw.alibi.is_null() {
        validate::pointer("alibi_slopes", raw.alibi, shape.q_heads)?;
    }
    let lse_len = if raw.lse.is_null() { 0 } else { shape.lse_len() };
    if lse_len > 0 {
        validate::pointer("lse", raw.lse, lse_len)?;
    }

    let o_range = bytes(raw.o.cast(), spans.o, 4);
    let lse_range = bytes(raw.lse.cast(), lse_len, 4);
    let inputs = [
        ("q", bytes(raw.q.cast(), spans.q, 4)),
        ("k", bytes(raw.k, spans.k, elem)),
        ("v", bytes(raw.v, spans.v, elem)),
        ("bias", bytes(raw.bias.cast(), spans.bias, 4)),
        ("alibi_slopes", bytes(raw.alibi.cast(), if raw.alibi.is_null() { 0 } else { shape.q_heads }, 4)),
        ("kv_lengths", bytes(p.kv_lengths.cast(), raw.kv_lengths.len(), 8)),
    ];
    for (name, range) in inputs {
        validate::no_overlap("o", o_range, name, range, false)?;
        validate::no_overlap("lse", lse_range, name, range, false)?;
    }
    validate::no_overlap("lse", lse_range, "o", o_range, false)?;
    Ok(raw)
}

/// Computes fused attention, O = softmax(scale·Q·Kᵀ + modifiers)·V per
/// batch and query head, in one pass over K and V with memory bounded by
/// the block sizes (64 keys by up to 192 query rows per thread, and for
/// prefill a 1 MiB cache of packed keys per thread), never the sequence
/// length.
///
/// Score of query row i (at KV position p) and key j: s = scale·q·k; with
/// softcap c > 0, s = c·tanh(s/c); then s += bias[b, h, i, j]; then
/// s −= slope_h·|p − j|. Keys at or past kv_lengths[b], after p (causal) or
/// outside the window are masked. Q, O, the bias and all arithmetic are
/// f32; K and V may be f32, f16 or bf16 and are widened exactly. Small
/// q_len·(q_heads/kv_heads) runs the decode path, which splits the keys
/// across threads and merges the parts by logsumexp.
///
/// Edge and non-finite policy:
/// - a row with no unmasked key (every row when kv_len or kv_lengths[b] is
///   0, the first q_len − kv_len rows of a causal call with q_len > kv_len)
///   outputs zeros and lse −inf; q_len = 0 writes nothing;
/// - K and V rows masked for every query row of a (batch, KV head) are
///   never read, so NaN or garbage in unused cache slots does not leak;
/// - NaN in a used Q, K or bias value makes the affected rows NaN. NaN in a
///   V row propagates to the rows that attend it. It may also reach rows
///   that mask it within the same block of up to 192 query rows.
///
/// Errors: NULL `p`; NULL or misaligned tensors with a nonzero span;
/// negative dims or strides; q_heads not a multiple of kv_heads; head_dim
/// or v_head_dim 0; a last stride other than 1; output strides that alias;
/// outputs overlapping inputs or each other; kv_dtype unknown; kv_lengths
/// outside 0 ..= kv_len; non-finite scale; negative or non-finite softcap;
/// negative window. On error nothing is written.
#[no_mangle]
pub extern "C" fn mlak_attention(p: *const AttentionParams) -> Status {
    guard(|| {
        if p.is_null() {
            return Err(Error::new(Status::NullPointer, "p is NULL; pass a mlak_attention_params"));
        }
        validate::pointer("p", p, 1)?;
        // SAFETY: checked non-NULL and aligned; the caller owns the struct.
        let params = unsafe { p.read() };
        let raw = raw_from_params(&params)?;
        // SAFETY: raw_from_params checked every pointer against its span,
        // the output overlaps, and the element type.
        unsafe { attn::run(&raw) }
    })
}
