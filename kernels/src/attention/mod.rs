//! Fused attention over one task: the query rows of one KV head (all the
//! query heads that share it, at a run of query positions) against one
//! range of keys, with online softmax over blocks of [`KV_BLOCK`] keys.
//!
//! The score matrix never exists in full. Per block of keys, the body forms
//! the `rows × KV_BLOCK` scores in scratch, applies the score modifiers and
//! masks, folds the block into the running row maximum `m`, row sum `l` and
//! unnormalized output, and multiplies the probabilities by V. Two register
//! tiles do the products:
//! - a GEMM tile `C (+)= A·B` broadcasting one A element against `NV` vectors
//!   of a B row, used for Q·Kᵀ (B = Kᵀ packed per block) and for P·V (B = the
//!   V rows, widened on load);
//! - for tasks of at most [`DOT_ROWS_MAX`] rows (decode), a dot-product tile
//!   that reads K rows in place, so no transposition costs a pass over K.
//!
//! The bodies are generic over [`SimdF32`] and the K/V element type, and
//! `attention_kernels!` expands them per instruction set in the sibling
//! files.

use crate::simd::{exp, exp_nonpositive, f16_bits_to_f32, Outlined, SimdF32, MAX_LANES};

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;
pub mod scalar;

/// Keys per block of the online softmax. A multiple of every lane count.
/// 64 measured faster than 128 for prefill at H12 L512 D64 and H32 L2048
/// D128 and for f32 decode at 32k keys (AVX-512, 1 thread); 128 was
/// faster for f16 decode.
pub const KV_BLOCK: usize = 64;

/// Tasks with at most this many query rows compute scores with the
/// dot-product tile, reading K in place; larger tasks pack Kᵀ per block.
pub const DOT_ROWS_MAX: usize = 8;

/// Element type of K and V, widened to f32 on load.
pub trait KvElem: Copy {
    /// The value 0 in this type, used to pad partial vectors.
    const ZERO: Self;

    /// Loads `S::LANES` elements from `p` as f32.
    ///
    /// # Safety
    ///
    /// `p .. p + S::LANES` must be readable.
    unsafe fn load<S: SimdF32>(s: S, p: *const Self) -> S::V;

    /// Widens one element.
    fn to_f32(self) -> f32;

    /// Whether [`load_pairs`](Self::load_pairs) splits elements by parity
    /// (true) or returns two consecutive vectors (false).
    const PAIRS_BY_PARITY: bool = false;

    /// Loads `2 · S::LANES` elements from `p` as two f32 vectors: elements
    /// `0 .. LANES` and `LANES .. 2 · LANES`, or, where
    /// [`PAIRS_BY_PARITY`](Self::PAIRS_BY_PARITY) is set, the even-indexed
    /// and the odd-indexed elements in order.
    ///
    /// # Safety
    ///
    /// `p .. p + 2 · S::LANES` must be readable.
    #[inline(always)]
    unsafe fn load_pairs<S: SimdF32>(s: S, p: *const Self) -> (S::V, S::V) {
        // SAFETY: both halves lie inside the caller's readable range.
        unsafe { (Self::load(s, p), Self::load(s, p.add(S::LANES))) }
    }

    /// Loads the first `n < S::LANES` elements from `p` as f32 and sets the
    /// other lanes to 0. Never reads past `p + n`.
    ///
    /// # Safety
    ///
    /// `p .. p + n` must be readable.
    #[inline(always)]
    unsafe fn load_tail<S: SimdF32>(s: S, p: *const Self, n: usize) -> S::V {
        debug_assert!(n < S::LANES);
        let mut buf = [Self::ZERO; MAX_LANES];
        // SAFETY: the caller guarantees n readable elements, and `buf` has
        // room for MAX_LANES >= LANES of them.
        unsafe {
            core::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), n);
            Self::load(s, buf.as_ptr())
        }
    }
}

impl KvElem for f32 {
    const ZERO: Self = 0.0;
    #[inline(always)]
    unsafe fn load<S: SimdF32>(s: S, p: *const f32) -> S::V {
        // SAFETY: forwarded from the caller.
        unsafe { s.load(p) }
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    unsafe fn load_tail<S: SimdF32>(s: S, p: *const f32, n: usize) -> S::V {
        // SAFETY: forwarded from the caller.
        unsafe { s.load_tail(p, n, 0.0) }
    }
}

/// An IEEE binary16 value as its bit pattern.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct F16Bits(pub u16);

impl KvElem for F16Bits {
    const ZERO: Self = F16Bits(0);
    #[inline(always)]
    unsafe fn load<S: SimdF32>(s: S, p: *const F16Bits) -> S::V {
        // SAFETY: forwarded from the caller; the type is a transparent u16.
        unsafe { s.load_f16(p.cast()) }
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16_bits_to_f32(self.0)
    }
}

/// A bfloat16 value as its bit pattern.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bf16Bits(pub u16);

impl KvElem for Bf16Bits {
    const ZERO: Self = Bf16Bits(0);
    #[inline(always)]
    unsafe fn load<S: SimdF32>(s: S, p: *const Bf16Bits) -> S::V {
        // SAFETY: forwarded from the caller; the type is a transparent u16.
        unsafe { s.load_bf16(p.cast()) }
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f32::from_bits(u32::from(self.0) << 16)
    }
    const PAIRS_BY_PARITY: bool = true;
    #[inline(always)]
    unsafe fn load_pairs<S: SimdF32>(s: S, p: *const Bf16Bits) -> (S::V, S::V) {
        // SAFETY: forwarded from the caller; the type is a transparent u16.
        unsafe { s.load_bf16_pairs(p.cast()) }
    }
}

/// One unit of attention work. Strides are in elements and point at the
/// task's first row: `q` addresses Q at (batch, first query head of the
/// group, first position, 0), `k` and `v` address K and V at (batch, KV
/// head, 0, 0), and the outputs likewise.
///
/// Row `r` of the task is query head `r % group` of the group at position
/// index `r / group`; it sits at KV position `first_pos + r / group`.
#[derive(Clone, Copy, Debug)]
pub struct AttentionTask {
    pub q: *const f32,
    pub q_head_stride: usize,
    pub q_row_stride: usize,
    /// K rows, of the element type of the entry point called.
    pub k: *const u8,
    pub k_row_stride: usize,
    /// V rows, of the element type of the entry point called.
    pub v: *const u8,
    pub v_row_stride: usize,
    /// Query heads sharing the KV head.
    pub group: usize,
    /// Query positions in the task.
    pub positions: usize,
    pub head_dim: usize,
    pub v_head_dim: usize,
    /// Factor applied to Q·Kᵀ.
    pub scale: f32,
    /// Logit cap c of c·tanh(s/c); 0 disables it.
    pub softcap: f32,
    /// KV position of the first query position; may be negative.
    pub first_pos: i64,
    /// Keys outside `kv_begin .. kv_end` are neither read nor attended.
    pub kv_begin: usize,
    pub kv_end: usize,
    /// Masks key j for a query at position q when j > q.
    pub causal: bool,
    /// Sliding window w: when > 0, masks key j unless q − j < w, and also
    /// unless j − q < w when not causal.
    pub window: usize,
    /// Additive bias at (first head, first position, key 0), or null.
    pub bias: *const f32,
    pub bias_head_stride: usize,
    pub bias_row_stride: usize,
    /// ALiBi slopes of the group's query heads, or null. Adds
    /// −slope·|q − j| to the score of key j.
    pub alibi: *const f32,
    /// Output rows of `v_head_dim` contiguous f32.
    pub out: *mut f32,
    pub out_head_stride: usize,
    pub out_row_stride: usize,
    /// Per-row logsumexp of the scores, or null.
    pub lse: *mut f32,
    pub lse_head_stride: usize,
    pub lse_row_stride: usize,
    /// Cache of packed Kᵀ blocks that the prefill tasks of one thread in
    /// one call share, `kt_cache_len(head_dim)` f32 apart from the scratch
    /// and cleared by [`kt_cache_reset`] before the first task, or null.
    pub kt_cache: *mut f32,
}

impl AttentionTask {
    /// Returns the number of query rows.
    pub fn rows(&self) -> usize {
        self.group * self.positions
    }

    /// Returns the keys that the query at `pos` attends, as a half-open
    /// range inside `kv_begin .. kv_end` (empty when `start >= end`). Both
    /// ends are nondecreasing in `pos`.
    #[inline(always)]
    fn key_range(&self, pos: i64) -> (i64, i64) {
        let mut lo = self.kv_begin as i64;
        let mut hi = self.kv_end as i64;
        if self.causal {
            hi = hi.min(pos.saturating_add(1));
        }
        if self.window > 0 {
            let w = self.window as i64;
            lo = lo.max(pos.saturating_sub(w - 1));
            if !self.causal {
                hi = hi.min(pos.saturating_add(w));
            }
        }
        (lo, hi)
    }
}

/// Returns the number of f32 of scratch that a task of `rows` query rows
/// needs, for every instruction set.
pub fn scratch_len(rows: usize, head_dim: usize, v_head_dim: usize) -> usize {
    let dp = head_dim.next_multiple_of(MAX_LANES);
    let dvp = v_head_dim.next_multiple_of(MAX_LANES);
    rows * dp + head_dim * KV_BLOCK + KV_BLOCK * dvp + rows * KV_BLOCK + rows * dvp + rows + rows * MAX_LANES
}

/// Returns the number of f32 of a Kᵀ cache (see [`AttentionTask::kt_cache`])
/// for K rows of `head_dim` elements.
pub fn kt_cache_len(head_dim: usize) -> usize {
    kt_cache_blocks(head_dim) * (head_dim * KV_BLOCK + KT_TAG_F32)
}

/// Marks every block of a Kᵀ cache for K rows of `head_dim` elements as
/// empty, so that no task takes a block that an earlier call packed from K
/// values that may have changed since.
///
/// # Safety
///
/// `cache` covers `kt_cache_len(head_dim)` f32.
pub unsafe fn kt_cache_reset(cache: *mut f32, head_dim: usize) {
    let blocks = kt_cache_blocks(head_dim);
    // SAFETY: the tags are the last blocks · KT_TAG_F32 f32 of the cache.
    unsafe { core::ptr::write_bytes(cache.add(blocks * head_dim * KV_BLOCK), 0, blocks * KT_TAG_F32) };
}

/// Bytes of packed Kᵀ blocks that a prefill cache keeps. Tasks of one
/// KV head read the same key blocks, and causal tasks of later rows read
/// those of earlier ones too, so a thread that runs them in turn packs
/// each block once. 1 MiB covers the blocks of 2048 keys at D 128 and fits
/// in a 2 MiB L2 beside the task's Q, scores and accumulators. On one Xeon
/// (CPUID model 207, 1 thread), causal prefill ran 3.5 % faster at H32 L2048
/// D128 and at H12 L512 D64, and 2 % faster at H8 L4096 D128, where half
/// the blocks have a slot.
const KT_CACHE_BYTES: usize = 1 << 20;

/// f32 slots of one cache tag: the K address, the first key and the key
/// count of the packed block, as three u64. A cleared tag has key count 0.
const KT_TAG_F32: usize = 6;

/// Returns the number of Kᵀ blocks that a cache keeps for K rows of
/// `head_dim` elements.
fn kt_cache_blocks(head_dim: usize) -> usize {
    KT_CACHE_BYTES / (head_dim.max(1) * KV_BLOCK * 4)
}

/// Lane indices 0, 1, 2, … as f32, for building per-lane key positions.
static IOTA: [f32; MAX_LANES] = [0., 1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12., 13., 14., 15.];

/// Work that [`tile`] interleaves with its products: one call per cache
/// line of B that it reads.
trait LineHook {
    /// Runs before the tile reads a cache line of B.
    fn line(&mut self);

    /// Runs before a tile reads `n` cache lines.
    #[inline(always)]
    fn lines(&mut self, n: usize) {
        for _ in 0..n {
            self.line();
        }
    }
}

/// The hook that does nothing.
impl LineHook for () {
    #[inline(always)]
    fn line(&mut self) {}
}

/// Returns how many vectors of `LANES` elements of type `E` fill one
/// 64-byte cache line, at least 1.
#[inline(always)]
const fn vectors_per_line<E>(lanes: usize) -> usize {
    let bytes = lanes * core::mem::size_of::<E>();
    if bytes >= 64 {
        1
    } else {
        64 / bytes
    }
}

/// Computes `C[0 .. M][0 .. NV·LANES] (+)= A[0 .. M][0 .. k] · B[0 .. k][..]`,
/// running the hook, if any, once for each cache line of row p of B before
/// it reads the row. `col` is the column of B at `b`: a line starts at
/// each multiple of 64 bytes of the row.
///
/// A is f32 at row stride `lda`, B is of type `B` at row stride `ldb`, C is
/// f32 at row stride `ldc`. With `accumulate` false, C is not read.
///
/// # Safety
///
/// A, B and C must cover the ranges above.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<S: SimdF32, B: KvElem, const M: usize, const NV: usize>(
    s: S,
    a: *const f32,
    lda: usize,
    b: *const B,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    k: usize,
    accumulate: bool,
    col: usize,
    mut hook: Option<&mut impl LineHook>,
) {
    let l = S::LANES;
    let per_line = vectors_per_line::<B>(l);
    let mut acc = [[s.splat(0.0); NV]; M];
    // SAFETY: all accesses stay inside the ranges the caller guarantees.
    unsafe {
        if accumulate {
            for (i, row) in acc.iter_mut().enumerate() {
                for (v, x) in row.iter_mut().enumerate() {
                    *x = s.load(c.add(i * ldc + v * l));
                }
            }
        }
        for p in 0..k {
            if let Some(h) = hook.as_deref_mut() {
                // When a vector is narrower than a line, only the vectors
                // that start a line call the hook, so each line reaches it
                // once.
                for v in (0..NV).step_by(per_line) {
                    if (col + v * l).is_multiple_of(per_line * l) {
                        h.line();
                    }
                }
            }
            let mut bv = [s.splat(0.0); NV];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = B::load(s, b.add(p * ldb + v * l));
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let av = s.splat(*a.add(i * lda + p));
                for (v, x) in row.iter_mut().enumerate() {
                    *x = s.fma(av, bv[v], *x);
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            for (v, x) in row.iter().enumerate() {
                s.store(c.add(i * ldc + v * l), *x);
            }
        }
    }
}

/// Runs [`tile`] on `m < MR` rows by picking the instantiation with M = m.
///
/// # Safety
///
/// As for [`tile`] with M = m.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_rows<S: SimdF32, B: KvElem, const NV: usize>(
    s: S,
    m: usize,
    a: *const f32,
    lda: usize,
    b: *const B,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    k: usize,
    accumulate: bool,
    col: usize,
    hook: Option<&mut impl LineHook>,
) {
    let f = hook;
    let acc = accumulate;
    // SAFETY: forwarded from the caller with M = m.
    unsafe {
        match m {
            1 => tile::<S, B, 1, NV>(s, a, lda, b, ldb, c, ldc, k, acc, col, f),
            2 => tile::<S, B, 2, NV>(s, a, lda, b, ldb, c, ldc, k, acc, col, f),
            3 => tile::<S, B, 3, NV>(s, a, lda, b, ldb, c, ldc, k, acc, col, f),
            4 => tile::<S, B, 4, NV>(s, a, lda, b, ldb, c, ldc, k, acc, col, f),
            5 => tile::<S, B, 5, NV>(s, a, lda, b, ldb, c, ldc, k, acc, col, f),
            6 => tile::<S, B, 6, NV>(s, a, lda, b, ldb, c, ldc, k, acc, col, f),
            7 => tile::<S, B, 7, NV>(s, a, lda, b, ldb, c, ldc, k, acc, col, f),
            _ => unreachable!("remainder rows must be below 8"),
        }
    }
}

/// Computes `C[m × n] (+)= A[m × k] · B[k × n]` with `MR × NV`-vector
/// register tiles. `n` must be a multiple of `S::LANES`; B is read only in
/// rows `0 .. k` and columns `0 .. n`. The first tile of each column
/// range runs the hook for its lines of each row p of B before it reads
/// them, so the hook runs once per line of B, interleaved with the
/// products.
///
/// # Safety
///
/// A, B and C must cover those ranges at their row strides. `MR <= 8`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm<S: SimdF32, B: KvElem, const MR: usize, const NV: usize>(
    s: S,
    a: *const f32,
    lda: usize,
    b: *const B,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    m: usize,
    n: usize,
    k: usize,
    accumulate: bool,
    hook: &mut impl LineHook,
) {
    let l = S::LANES;
    debug_assert!(n.is_multiple_of(l) && MR <= 8);
    // SAFETY: each column range j .. j + W·LANES lies inside the m × n block
    // the caller provides.
    unsafe {
        let mut j = 0;
        while j + NV * l <= n {
            gemm_columns::<S, B, MR, NV>(s, a, lda, b.add(j), ldb, c.add(j), ldc, m, k, accumulate, j, hook);
            j += NV * l;
        }
        while j < n {
            gemm_columns::<S, B, MR, 1>(s, a, lda, b.add(j), ldb, c.add(j), ldc, m, k, accumulate, j, hook);
            j += l;
        }
    }
}

/// Computes the `W`-vector column range of [`gemm`] at `b` and `c`, which
/// starts at column `col` of B: tiles of `MR` rows, then the rest of the
/// rows in one [`tile_rows`]. The first tile runs the hook.
///
/// # Safety
///
/// As for [`gemm`], for `W·LANES` columns at `b` and `c`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_columns<S: SimdF32, B: KvElem, const MR: usize, const W: usize>(
    s: S,
    a: *const f32,
    lda: usize,
    b: *const B,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    m: usize,
    k: usize,
    accumulate: bool,
    col: usize,
    hook: &mut impl LineHook,
) {
    // SAFETY: every tile call covers rows i .. i + MR, or i .. m, of the
    // range, which lie inside the block the caller provides.
    unsafe {
        let mut i = 0;
        while i + MR <= m {
            let hook = (i == 0).then_some(&mut *hook);
            tile::<S, B, MR, W>(s, a.add(i * lda), lda, b, ldb, c.add(i * ldc), ldc, k, accumulate, col, hook);
            i += MR;
        }
        if i < m {
            let hook = (i == 0).then_some(&mut *hook);
            tile_rows::<S, B, W>(s, m - i, a.add(i * lda), lda, b, ldb, c.add(i * ldc), ldc, k, accumulate, col, hook);
        }
    }
}

/// The arguments of one [`gemm`] call, to run it through
/// [`SimdF32::outline`].
struct GemmCall<B, H, const MR: usize, const NV: usize> {
    a: *const f32,
    lda: usize,
    b: *const B,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    m: usize,
    n: usize,
    k: usize,
    accumulate: bool,
    hook: H,
}

impl<S: SimdF32, B: KvElem, H: LineHook, const MR: usize, const NV: usize> Outlined<S> for GemmCall<B, H, MR, NV> {
    /// The hook after the call.
    type Out = H;

    /// # Safety
    ///
    /// As for [`gemm`] with these arguments.
    #[inline(always)]
    unsafe fn run(self, s: S) -> H {
        let GemmCall { a, lda, b, ldb, c, ldc, m, n, k, accumulate, mut hook } = self;
        // SAFETY: forwarded from the caller.
        unsafe { gemm::<S, B, MR, NV>(s, a, lda, b, ldb, c, ldc, m, n, k, accumulate, &mut hook) };
        hook
    }
}

/// Computes the scores of `R` packed query rows against `KEYS` consecutive
/// K rows as dot products over the head dimension, into `sc[r·KV_BLOCK + j]`.
/// Each score accumulates in the lanes of one vector, and the
/// `R·KEYS` vectors are summed `LANES` at a time by
/// [`SimdF32::reduce_add_lanes`].
///
/// With `cursor`, the tile advances it by one line per K line that it
/// reads, `KEYS` per step of one line in each row, so the prefetch
/// requests spread over the products.
///
/// # Safety
///
/// `q` contains `R` rows of `dp` f32 (zero-padded past `d`, `dp` a multiple
/// of the lane count), `k` addresses `KEYS` rows of `d` elements at stride
/// `ks`, and `sc` covers `R` rows of `KV_BLOCK`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn dot_tile<S: SimdF32, E: KvElem, const R: usize, const KEYS: usize>(
    s: S,
    q: *const f32,
    dp: usize,
    k: *const E,
    ks: usize,
    d: usize,
    sc: *mut f32,
    mut cursor: Option<&mut impl LineHook>,
) {
    let l = S::LANES;
    let full = d / l * l;
    let per_line = vectors_per_line::<E>(l);
    let mut acc = [[s.splat(0.0); KEYS]; R];
    let mut lines = |n: usize| {
        if let Some(c) = cursor.as_deref_mut() {
            c.lines(n);
        }
    };
    // SAFETY: K loads stay inside the first d elements of each row (the
    // tail load reads d − x of them), Q loads inside the padded rows.
    unsafe {
        let mut x = 0;
        // Steps of one cache line per row: each step advances the cursor
        // once per row, without a test per vector.
        while x + per_line * l <= full {
            lines(KEYS);
            for _ in 0..per_line {
                dot_step::<S, E, R, KEYS, false>(s, q, dp, k, ks, x, 0, &mut acc);
                x += l;
            }
        }
        while x < full {
            if (x / l).is_multiple_of(per_line) {
                lines(KEYS);
            }
            dot_step::<S, E, R, KEYS, false>(s, q, dp, k, ks, x, 0, &mut acc);
            x += l;
        }
        if x < d {
            if (x / l).is_multiple_of(per_line) {
                lines(KEYS);
            }
            dot_step::<S, E, R, KEYS, true>(s, q, dp, k, ks, x, d - x, &mut acc);
        }
        // Accumulator (r, j) contains the lane partial sums of score (r, j).
        // The tree sums LANES accumulators at a time into one vector.
        // NOTE: with f16 K/V, 4 rows and D = 128, decode takes about 90
        // cycles per key on one Zen 4 core and 53 on one Zen 5 core (K and
        // V in L1 or L2), against 64 and 32 for its zmm FMAs. On Zen 5,
        // replacing these reductions by one sum did not change the time,
        // so the gap lies in the product loops, not here.
        let mut chunk = [s.splat(0.0); MAX_LANES];
        let mut buf = [0.0f32; MAX_LANES];
        let mut c = 0;
        while c < R * KEYS {
            let n = (R * KEYS - c).min(l);
            for (i, v) in chunk[..n].iter_mut().enumerate() {
                *v = acc[(c + i) / KEYS][(c + i) % KEYS];
            }
            s.to_array(s.reduce_add_lanes(&chunk[..n]), &mut buf);
            for (i, &x) in buf[..n].iter().enumerate() {
                let (r, j) = ((c + i) / KEYS, (c + i) % KEYS);
                *sc.add(r * KV_BLOCK + j) = x;
            }
            c += n;
        }
    }
}

/// Adds the products of the `R` query rows and the `KEYS` K rows over
/// elements `x .. x + LANES` to the accumulators: one vector step of
/// [`dot_tile`]. With `TAIL`, each K row is read only up to element
/// `x + rest`, and the zero padding of Q covers the rest of the vector.
///
/// # Safety
///
/// As for [`dot_tile`], with `x` a multiple of the lane count, and
/// `x + LANES <= d` without `TAIL`, or `rest = d − x < LANES` with it.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn dot_step<S: SimdF32, E: KvElem, const R: usize, const KEYS: usize, const TAIL: bool>(
    s: S,
    q: *const f32,
    dp: usize,
    k: *const E,
    ks: usize,
    x: usize,
    rest: usize,
    acc: &mut [[S::V; KEYS]; R],
) {
    // SAFETY: a full vector lies inside the first d elements of each K row
    // without TAIL, and the tail load reads rest of them with it. Q loads
    // stay inside the padded rows.
    unsafe {
        let mut kv = [s.splat(0.0); KEYS];
        for (j, v) in kv.iter_mut().enumerate() {
            let row = k.add(j * ks + x);
            *v = if TAIL { E::load_tail(s, row, rest) } else { E::load(s, row) };
        }
        for (r, row) in acc.iter_mut().enumerate() {
            let qv = s.load(q.add(r * dp + x));
            for (j, a) in row.iter_mut().enumerate() {
                *a = s.fma(qv, kv[j], *a);
            }
        }
    }
}

/// Scores of `rows <= DOT_ROWS_MAX` packed query rows against `kb` keys,
/// by [`dot_tile`] over groups of up to 4 rows and `DK` keys. The first
/// group of rows, which reads each K line first, advances the cursor.
///
/// # Safety
///
/// As for [`dot_tile`], for `rows` rows and `kb <= KV_BLOCK` keys.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn scores_dot<S: SimdF32, E: KvElem, const DK: usize>(
    s: S,
    q: *const f32,
    dp: usize,
    rows: usize,
    k: *const E,
    ks: usize,
    d: usize,
    kb: usize,
    sc: *mut f32,
    cursor: &mut impl LineHook,
) {
    let mut r = 0;
    // SAFETY: each call covers rows r .. r + R and keys j .. j + KEYS inside
    // the ranges the caller provides.
    unsafe {
        while r < rows {
            let (qr, sr) = (q.add(r * dp), sc.add(r * KV_BLOCK));
            let mut j = 0;
            macro_rules! run {
                ($rr:literal) => {{
                    while j + DK <= kb {
                        let c = (r == 0).then_some(&mut *cursor);
                        dot_tile::<S, E, $rr, DK>(s, qr, dp, k.add(j * ks), ks, d, sr.add(j), c);
                        j += DK;
                    }
                    while j < kb {
                        let c = (r == 0).then_some(&mut *cursor);
                        dot_tile::<S, E, $rr, 1>(s, qr, dp, k.add(j * ks), ks, d, sr.add(j), c);
                        j += 1;
                    }
                }};
            }
            let rr = (rows - r).min(4);
            match rr {
                1 => run!(1),
                2 => run!(2),
                3 => run!(3),
                _ => run!(4),
            }
            r += rr;
        }
    }
}

/// The arguments of one [`scores_dot`] call, to run it through
/// [`SimdF32::outline`].
struct ScoresDotCall<P, E, const DK: usize> {
    q: *const f32,
    dp: usize,
    rows: usize,
    k: *const E,
    ks: usize,
    d: usize,
    kb: usize,
    sc: *mut f32,
    cursor: P,
}

impl<S: SimdF32, E: KvElem, P: LineHook, const DK: usize> Outlined<S> for ScoresDotCall<P, E, DK> {
    /// The cursor after the call.
    type Out = P;

    /// # Safety
    ///
    /// As for [`scores_dot`] with these arguments.
    #[inline(always)]
    unsafe fn run(self, s: S) -> P {
        let ScoresDotCall { q, dp, rows, k, ks, d, kb, sc, mut cursor } = self;
        // SAFETY: forwarded from the caller.
        unsafe { scores_dot::<S, E, DK>(s, q, dp, rows, k, ks, d, kb, sc, &mut cursor) };
        cursor
    }
}

/// Packs `kb` K rows transposed into `kt[d][KV_BLOCK]`, widened to f32.
/// Blocks of `LANES` keys by `LANES` dimensions are transposed in
/// registers. The dimensions and keys past the last full block are copied
/// one element at a time.
///
/// # Safety
///
/// `k` addresses `kb <= KV_BLOCK` rows of `d` elements at stride `ks`; `kt`
/// covers `d · KV_BLOCK` f32.
#[inline(always)]
unsafe fn pack_kt<S: SimdF32, E: KvElem>(s: S, k: *const E, ks: usize, d: usize, kb: usize, kt: *mut f32) {
    let l = S::LANES;
    let mut block = [s.splat(0.0); MAX_LANES];
    let block = &mut block[..l];
    let full_keys = kb / l * l;
    let full_dims = d / l * l;
    // SAFETY: reads stay inside the first d elements of each of the kb
    // rows; writes inside kt, whose rows hold KV_BLOCK >= kb keys.
    unsafe {
        let mut j = 0;
        while j < full_keys {
            let mut x = 0;
            while x < full_dims {
                for (i, row) in block.iter_mut().enumerate() {
                    *row = E::load(s, k.add((j + i) * ks + x));
                }
                s.transpose(block);
                for (t, col) in block.iter().enumerate() {
                    s.store(kt.add((x + t) * KV_BLOCK + j), *col);
                }
                x += l;
            }
            j += l;
        }
        for j in 0..kb {
            let row = k.add(j * ks);
            let first = if j < full_keys { full_dims } else { 0 };
            for x in first..d {
                *kt.add(x * KV_BLOCK + j) = (*row.add(x)).to_f32();
            }
        }
    }
}

/// Copies `kb` V rows widened to f32 into `vp[kb][dvp]`, zero-padded from
/// `dv` to `dvp`.
///
/// # Safety
///
/// `v` addresses `kb` rows of `dv` elements at stride `vs`; `vp` covers
/// `kb · dvp` f32.
#[inline(always)]
unsafe fn pack_v<S: SimdF32, E: KvElem>(s: S, v: *const E, vs: usize, dv: usize, dvp: usize, kb: usize, vp: *mut f32) {
    let l = S::LANES;
    // SAFETY: reads stay inside the first dv elements of each row; writes
    // inside vp, whose rows hold dvp >= dv rounded up to the lane count.
    unsafe {
        for j in 0..kb {
            let (src, dst) = (v.add(j * vs), vp.add(j * dvp));
            let mut x = 0;
            while x + l <= dv {
                s.store(dst.add(x), E::load(s, src.add(x)));
                x += l;
            }
            if x < dv {
                s.store(dst.add(x), E::load_tail(s, src.add(x), dv - x));
            }
        }
    }
}

/// Decode prefetch scheme: requests into L1 and 2 key runs, the default.
pub const PREFETCH_L1: u8 = 0;
/// Decode prefetch scheme: as [`PREFETCH_L1`] with paced requests (see
/// `Cursor`), for f32 K and V read from DRAM on AMD Zen cores.
pub const PREFETCH_L1_PACED: u8 = 1;
/// Decode prefetch scheme: requests into L2 and 1 key run, for Intel cores.
///
/// Measured on one Intel Xeon core (CPUID model 167) with AVX-512 FP16 and
/// AMX (Hq 32, Hkv 8, D 128, 32768 keys, caches timed in turn). There it
/// read f16 K and V from DRAM at 14.5 GB/s against 11.3 with
/// [`PREFETCH_L1`], and f32 at 15.6 against 13.7.
/// Each change gained alone: requests into L2 with 2 runs read f16 at 12.9,
/// and 1 run into L1 at 13.2. With K and V in L3 (2048 keys) both schemes
/// ran alike. On a second Xeon (CPUID model 207), with caches of 2048 and
/// 32768 keys from DRAM, this scheme read f32 6 % and f16 8 to 18 % faster
/// than [`PREFETCH_L1`] (medians of 3 runs in turn). On one Zen 5 core,
/// requests into L2 read 5 to 40 % slower.
pub const PREFETCH_L2: u8 = 2;

/// Software prefetch of a decode task: a cursor over the cache lines of
/// the K and V rows that the task reads. It names them in the order that
/// the task reads them (per block of keys, the K rows, then the V rows),
/// [`prefetch_lead`] bytes ahead of the reads.
///
/// Decode reads every K and V byte once, from DRAM when the cache is long,
/// and the hardware prefetchers alone leave the core waiting. The product
/// loops advance the cursor by one line per line that they read, so the
/// requests follow the rate of consumption and spread over the products.
///
/// It replaced a scheme that requested, per line read, the same line of
/// the rows a fixed distance ahead in each K and V stream, into L2 and into
/// L1. On one Zen 5 core (Hkv 8, D 128, runs timed in turn), the cursor
/// read f32 K and V at 8192 and 32768 keys 5 to 30 % faster, and f16 0 to
/// 10 % faster. The best f32 rate was 40 GB/s from 64-byte aligned rows,
/// against a read ceiling of 38 to 42 GB/s. With K and V in L2 or L3,
/// where decode is bound by compute, its bookkeeping costs 3 to 6 %.
///
/// The cursor's line requests never name a row outside the task, but its
/// page touches (see [`PAGE_TOUCH_LEAD`]) can. Prefetch never faults.
///
/// With [`PREFETCH_L1_PACED`], the cursor's position passes through memory after each
/// request, so each request waits for a store and a reload of the one
/// before. The requests go out spaced, which is the likely cause of the
/// gain, though no hardware counter has confirmed it.
/// On one Zen 5 core (Hkv 8, D 128), paced requests read f32 K and V from
/// DRAM 10 to 15 % faster at 8192 and 32768 keys, and 5 to 9 % faster
/// with AVX2. They read f32 from L3 10 to 15 % slower, and f16 from DRAM
/// 5 % slower. A chain of 9 cycles of register arithmetic per request
/// gained half as much, and one of 3 or 6 cycles nothing. So the driver
/// takes the paced entry point for f32 K and V larger than L2, which in a
/// model's decode step come from DRAM.
///
/// NOTE: the same call repeated on f32 K and V that stay in L3 reads 15 to
/// 18 % slower paced than unpaced on that core. The driver cannot tell
/// that case apart from K and V in DRAM.
#[derive(Clone, Copy)]
struct Cursor<S, E, const SCHEME: u8> {
    s: S,
    /// Next line to request, or null past the task's last row.
    p: *const E,
    /// End of the current row: the cursor moves on when `p` reaches it.
    row_end: *const E,
    /// Key of the current row, and the first and one past the last key of
    /// its block.
    key: usize,
    block: usize,
    block_end: usize,
    /// The blocks after the current one.
    blocks: Blocks,
    /// Whether the current row is a V row.
    in_v: bool,
    k: *const E,
    v: *const E,
    ks: usize,
    vs: usize,
    d: usize,
    dv: usize,
}

/// Returns the bytes that the decode prefetch cursor of prefetch scheme
/// `scheme` runs ahead of the reads, for V rows of `v_row_bytes` that the
/// P·V tile reads in `passes` passes over column ranges.
///
/// The cursor walks each V row whole, but the first pass reads a part of
/// every row of the block, so more passes need a longer lead. With 2
/// passes (AVX-512, D 128), the scheme's base lead alone read fastest.
/// Each pass past the second adds its share of the V block: 40 KiB in all for f32
/// rows of 128 in 8 passes (AVX2). On one Zen 5 core at 32768 keys (Hkv 8,
/// D 128), AVX2 f32 decode read 35 GB/s with a 32 to 48 KiB lead and
/// 26 GB/s with 16 KiB.
fn prefetch_lead(scheme: u8, v_row_bytes: usize, passes: usize) -> usize {
    let v_block = KV_BLOCK * v_row_bytes;
    let base = if scheme == PREFETCH_L1_PACED { PREFETCH_LEAD_PACED } else { PREFETCH_LEAD };
    base + v_block * passes.saturating_sub(2) / passes.max(1)
}

/// The prefetch lead with at most 2 V passes. On one Zen 5 core (AVX-512,
/// 2 passes), 16 KiB read fastest for f32 and f16 at 32768 keys. 8 KiB was
/// 10 to 15 % slower. 24 KiB was 0 to 10 % slower, and 10 % slower for f32
/// from L3. Requests into L2 (PREFETCHT1) instead of L1 were 5 to 40 %
/// slower, and a second cursor further ahead into L2 10 to 25 % slower.
const PREFETCH_LEAD: usize = 16 << 10;

/// The prefetch lead of [`PREFETCH_L1_PACED`] with at most 2 V passes.
///
/// Measured on one Zen 5 core with the page touches of [`PAGE_TOUCH_LEAD`],
/// comparing medians of runs in turn. f32 read 7 to 10 % faster with 24 KiB
/// than with 16 at 8192 and 32768 keys. At 32768 keys it read 34.7 and
/// 34.3 GB/s against 32.1 and 31.0. With AVX2 it read 8 % faster. 32 KiB
/// read like 24, and 8, 12 and 48 KiB slower. The unpaced schemes stay at
/// [`PREFETCH_LEAD`], because there 24 KiB read f32 from DRAM 3 % slower,
/// f32 from L3 4 to 6 % slower and f16 from DRAM 8 % slower.
const PREFETCH_LEAD_PACED: usize = 24 << 10;

/// Page size that the page touches assume: the smallest x86-64 and
/// AArch64 Linux page.
const PAGE_BYTES: usize = 4096;

/// Bytes past the prefetch cursor at which it touches each next page of
/// f32 K and V: once per page, it requests a line that far ahead into L2.
/// The request makes the core translate the page address early, so the
/// cursor's own requests to that page later do not wait for a page walk.
///
/// On one Zen 5 core (Hq 32, Hkv 8, D 128, 4 KiB pages, caches timed in
/// turn), f32 decode from DRAM read 6 to 11 % faster with the touches,
/// comparing medians. At 32768 keys (paced) it read 32.9 GB/s against 31.0.
/// At 8192 keys (paced) it gained 7 to 11 %, and at 2048 keys (unpaced) 8
/// to 11 %. With K and V in L3 it read 2 to 4 % faster, and in L2 (128
/// keys) 2 to 3 % slower. A lead of 32 KiB gained nothing, and 96 or
/// 128 KiB less than 64. With the 24 KiB lead of paced prefetch, leads of
/// 40 and 96 KiB read like 64. The same calls on 2 MiB pages, which need
/// no page walk per 4 KiB, read f32 5 to 10 % faster without touches, and
/// as fast as 4 KiB pages with them. So page walks are the likely cost
/// that the touches hide, though no hardware counter has confirmed it.
/// f16 from DRAM read 3 to 8 % slower with touches, so f16 and bf16 go
/// without them.
/// Intel cores (scheme [`PREFETCH_L2`]) also go without them: on one Xeon
/// (CPUID model 207) touches 32 to 128 KiB ahead changed nothing beyond
/// the noise.
///
/// A touch names an address, not a row: near the end of a task it can lie
/// up to this many bytes past the task's last row, or past the tensor.
/// Prefetch never faults and its line is never read, so no value there
/// reaches the output. Skipping the touches past the task's last row cost
/// more than the touches gained. With a compare per touch against an end
/// kept in the cursor, f32 at 32768 keys read 10 % slower on that Zen 5
/// core than with no touches at all.
const PAGE_TOUCH_LEAD: usize = 64 << 10;

impl<S: SimdF32, E: KvElem, const SCHEME: u8> Cursor<S, E, SCHEME> {
    /// Elements of type `E` per 64-byte line.
    const LINE: usize = 64 / core::mem::size_of::<E>();

    /// Returns a cursor at the first line of the first K row of `blocks`,
    /// or an idle one when there is none. K and V rows contain `d` and `dv`
    /// elements at strides `ks` and `vs`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn new(s: S, k: *const E, ks: usize, d: usize, v: *const E, vs: usize, dv: usize, mut blocks: Blocks) -> Self {
        let first = blocks.pop();
        let (block, kb) = first.unwrap_or((0, 0));
        let mut c = Cursor {
            s,
            p: core::ptr::null(),
            row_end: core::ptr::null(),
            key: block,
            block,
            block_end: block + kb,
            blocks,
            in_v: false,
            k,
            v,
            ks,
            vs,
            d,
            dv,
        };
        if first.is_some() {
            c.start_row();
        }
        c
    }

    /// Returns a cursor that requests nothing.
    #[inline(always)]
    fn idle(s: S) -> Self {
        Self::new(s, core::ptr::null(), 0, 0, core::ptr::null(), 0, 0, Blocks::new(0, 0, 1))
    }

    /// Whether the cursor touches pages ahead (see [`PAGE_TOUCH_LEAD`]),
    /// which it does for f32 K and V under the L1 schemes.
    const TOUCH_PAGES: bool = SCHEME != PREFETCH_L2 && core::mem::size_of::<E>() == 4;

    /// Requests the next `n` lines, into the cache level of the scheme,
    /// and touches the pages ahead of them.
    #[inline(always)]
    fn advance(&mut self, n: usize) {
        let s = self.s;
        if SCHEME == PREFETCH_L2 {
            self.walk(n, |p| s.prefetch_l2(p.cast()), |_| {});
        } else {
            self.walk(n, |p| s.prefetch(p.cast()), |p| s.prefetch_l2(p.cast()));
        }
    }

    /// Passes the next `n` lines to `f` and moves past them. When
    /// [`TOUCH_PAGES`](Self::TOUCH_PAGES) is set and a line starts in the
    /// first 64 bytes of a page, it also passes to `touch` the address
    /// [`PAGE_TOUCH_LEAD`] bytes past that line.
    #[inline(always)]
    fn walk(&mut self, n: usize, mut f: impl FnMut(*const E), mut touch: impl FnMut(*const E)) {
        for _ in 0..n {
            if self.p.is_null() {
                return;
            }
            f(self.p);
            if Self::TOUCH_PAGES && (self.p as usize) % PAGE_BYTES < 64 {
                touch(self.p.wrapping_byte_add(PAGE_TOUCH_LEAD));
            }
            self.p = self.p.wrapping_add(Self::LINE);
            if SCHEME == PREFETCH_L1_PACED {
                self.p = core::hint::black_box(self.p);
            }
            if self.p >= self.row_end {
                self.next_row();
            }
        }
    }

    /// Moves to the next row: the next K or V row of the block, the V rows
    /// after the K rows, the next block after the V rows.
    #[inline(always)]
    fn next_row(&mut self) {
        self.key += 1;
        if self.key == self.block_end {
            if self.in_v {
                let Some((j0, kb)) = self.blocks.pop() else {
                    self.p = core::ptr::null();
                    return;
                };
                (self.block, self.block_end) = (j0, j0 + kb);
            }
            self.key = self.block;
            self.in_v = !self.in_v;
        }
        self.start_row();
    }

    #[inline(always)]
    fn start_row(&mut self) {
        let (base, stride, len) = if self.in_v { (self.v, self.vs, self.dv) } else { (self.k, self.ks, self.d) };
        self.p = base.wrapping_add(self.key * stride);
        self.row_end = self.p.wrapping_add(len);
    }
}

/// Key runs that a decode task reads in turn under [`PREFETCH_L1`] and
/// [`PREFETCH_L1_PACED`], one block of each: 2 runs
/// give 4 sequential streams (K and V of each run). On one Zen 3 core, a
/// plain read of 4 streams ran about 1.2x faster than of 2, and 8 no
/// faster than 4. f32 decode of 32k keys there gained about 12 %, and 4
/// runs measured the same as 2. With the prefetch cursor on one Zen 5
/// core, 2 runs read f16 at 2048 keys (from L3) 9 % faster than 1, and
/// the other rows alike.
const RUNS: usize = 2;

/// Returns the key runs of a decode task under prefetch scheme `scheme`.
#[inline(always)]
const fn decode_runs(scheme: u8) -> usize {
    if scheme == PREFETCH_L2 { 1 } else { RUNS }
}

/// The order in which a task takes its blocks of keys. The keys split
/// into `runs` runs of whole blocks, and the task takes one block of each
/// run in turn. The online softmax accepts keys in any order.
#[derive(Clone, Copy)]
struct Blocks {
    /// Next key and end of each run.
    next: [usize; RUNS],
    ends: [usize; RUNS],
    runs: usize,
    /// The run to try first.
    run: usize,
}

impl Blocks {
    /// Splits keys `lo .. hi` into `runs.min(RUNS)` runs, at least one and
    /// at most one per block.
    fn new(lo: usize, hi: usize, runs: usize) -> Self {
        let blocks = hi.saturating_sub(lo).div_ceil(KV_BLOCK);
        let runs = runs.min(RUNS).min(blocks).max(1);
        let per_run = blocks.div_ceil(runs) * KV_BLOCK;
        let mut b = Blocks { next: [hi; RUNS], ends: [hi; RUNS], runs, run: 0 };
        for i in 0..runs {
            b.next[i] = (lo + i * per_run).min(hi);
            b.ends[i] = (lo + (i + 1) * per_run).min(hi);
        }
        b
    }

    /// Returns the first key and the key count of the next block, or
    /// `None` after the last.
    #[inline(always)]
    fn pop(&mut self) -> Option<(usize, usize)> {
        let i = (0..self.runs).map(|x| (self.run + x) % self.runs).find(|&i| self.next[i] < self.ends[i])?;
        let (j0, kb) = (self.next[i], (self.ends[i] - self.next[i]).min(KV_BLOCK));
        self.next[i] += kb;
        self.run = i + 1;
        Some((j0, kb))
    }
}

impl<S: SimdF32, E: KvElem, const SCHEME: u8> LineHook for Cursor<S, E, SCHEME> {
    #[inline(always)]
    fn line(&mut self) {
        self.advance(1);
    }
    #[inline(always)]
    fn lines(&mut self, n: usize) {
        self.advance(n);
    }
}

/// Computes c·tanh(x) lane-wise as c·(1 − 2/(e^{2x} + 1)), which saturates
/// to ±c for large |x| and keeps NaN. Its absolute error is a few c·ε.
#[inline(always)]
fn softcap<S: SimdF32>(s: S, x: S::V, cap: S::V) -> S::V {
    let one = s.splat(1.0);
    let e = exp(s, s.add(x, x));
    let t = s.sub(one, s.div(s.splat(2.0), s.add(e, one)));
    s.mul(cap, t)
}

/// Per-row values of the score modifiers for one block.
#[derive(Clone, Copy)]
struct RowMods {
    /// Bias at key `j0 + a`, or null.
    bias: *const f32,
    /// ALiBi slope; 0 when disabled.
    slope: f32,
    /// `pos − (j0 + a)`, the distance from the query to the first key.
    dist0: f32,
    softcap: f32,
}

/// Applies the score modifiers to `x[0 .. n]` in place and returns the
/// maximum, or NaN when an entry is NaN.
///
/// # Safety
///
/// `x[0 .. n]` is readable and writable; `mods.bias[0 .. n]` is readable
/// when not null.
#[inline(always)]
unsafe fn modify_and_max<S: SimdF32>(s: S, x: *mut f32, n: usize, mods: RowMods) -> f32 {
    let l = S::LANES;
    let cap = s.splat(mods.softcap);
    let slope = s.splat(mods.slope);
    let zero = s.splat(0.0);
    let mut mx = s.splat(f32::NEG_INFINITY);
    let mut nan = s.mask_none();
    let mut i = 0;
    // SAFETY: loads and stores cover x[i .. i + l] with i + l <= n or the
    // tail x[i .. n], and likewise for the bias.
    unsafe {
        let iota = s.load(IOTA.as_ptr());
        while i < n {
            let w = (n - i).min(l);
            let mut v = if w == l { s.load(x.add(i)) } else { s.load_tail(x.add(i), w, 0.0) };
            if mods.softcap > 0.0 {
                v = softcap(s, v, cap);
            }
            if !mods.bias.is_null() {
                let b = if w == l { s.load(mods.bias.add(i)) } else { s.load_tail(mods.bias.add(i), w, 0.0) };
                v = s.add(v, b);
            }
            if mods.slope != 0.0 {
                // distance = pos − key = dist0 − (i + lane)
                let dist = s.sub(s.splat(mods.dist0 - i as f32), iota);
                let abs = s.max(dist, s.sub(zero, dist));
                v = s.fma(s.sub(zero, slope), abs, v);
            }
            nan = s.mask_or(nan, s.is_nan(v));
            if w == l {
                s.store(x.add(i), v);
                mx = s.max(mx, v);
            } else {
                s.store_tail(x.add(i), w, v);
                let padded = s.select(s.lt(iota, s.splat(w as f32)), v, s.splat(f32::NEG_INFINITY));
                mx = s.max(mx, padded);
            }
            i += l;
        }
    }
    if s.mask_any(nan) {
        f32::NAN
    } else {
        s.reduce_max(mx)
    }
}

/// Replaces `x[0 .. n]` by e^(x − m) and returns the sum.
///
/// # Safety
///
/// `x[0 .. n]` is readable and writable.
#[inline(always)]
unsafe fn exp_and_sum<S: SimdF32>(s: S, x: *mut f32, n: usize, m: f32) -> f32 {
    let l = S::LANES;
    let vm = s.splat(m);
    let (mut s0, mut s1) = (s.splat(0.0), s.splat(0.0));
    let mut i = 0;
    // SAFETY: accesses cover x[i .. i + l] with i + l <= n or the tail.
    unsafe {
        while i + 2 * l <= n {
            let e0 = exp(s, s.sub(s.load(x.add(i)), vm));
            let e1 = exp(s, s.sub(s.load(x.add(i + l)), vm));
            s.store(x.add(i), e0);
            s.store(x.add(i + l), e1);
            s0 = s.add(s0, e0);
            s1 = s.add(s1, e1);
            i += 2 * l;
        }
        while i < n {
            let w = (n - i).min(l);
            if w == l {
                let e = exp(s, s.sub(s.load(x.add(i)), vm));
                s.store(x.add(i), e);
                s0 = s.add(s0, e);
            } else {
                // -inf padding contributes e^-inf = 0 to the sum.
                let e = exp(s, s.sub(s.load_tail(x.add(i), w, f32::NEG_INFINITY), vm));
                s.store_tail(x.add(i), w, e);
                s0 = s.add(s0, e);
            }
            i += l;
        }
    }
    s.reduce_add(s.add(s0, s1))
}

/// Multiplies `x[0 .. n]` by `f`, or sets it to `f` when `set`.
///
/// # Safety
///
/// `x[0 .. n]` is readable and writable; `n` is a multiple of the lanes.
#[inline(always)]
unsafe fn scale_row<S: SimdF32>(s: S, x: *mut f32, n: usize, f: f32, set: bool) {
    let l = S::LANES;
    let vf = s.splat(f);
    let mut i = 0;
    // SAFETY: n is a multiple of l, so every access is a full vector inside
    // x[0 .. n].
    unsafe {
        while i < n {
            let v = if set { vf } else { s.mul(s.load(x.add(i)), vf) };
            s.store(x.add(i), v);
            i += l;
        }
    }
}

/// Scratch regions of one task, carved from the caller's buffer.
struct Scratch {
    q: *mut f32,
    kt: *mut f32,
    vp: *mut f32,
    scores: *mut f32,
    acc: *mut f32,
    m: *mut f32,
    /// Per row, a vector of `LANES` partial sums of the softmax
    /// denominator, at a row stride of `MAX_LANES`.
    l: *mut f32,
}

impl Scratch {
    /// # Safety
    ///
    /// `base` covers `scratch_len(rows, d, dv)` f32.
    #[inline(always)]
    unsafe fn carve(base: *mut f32, rows: usize, d: usize, dv: usize) -> Scratch {
        let dp = d.next_multiple_of(MAX_LANES);
        let dvp = dv.next_multiple_of(MAX_LANES);
        // SAFETY: the offsets sum to scratch_len(rows, d, dv).
        unsafe {
            let q = base;
            let kt = q.add(rows * dp);
            let vp = kt.add(d * KV_BLOCK);
            let scores = vp.add(KV_BLOCK * dvp);
            let acc = scores.add(rows * KV_BLOCK);
            let m = acc.add(rows * dvp);
            let l = m.add(rows);
            Scratch { q, kt, vp, scores, acc, m, l }
        }
    }
}

/// Returns the packed Kᵀ of the `kb` keys at key `j0`, whose rows start at
/// `kblk`. That is a block that an earlier task of this call packed into
/// the task's Kᵀ cache, or one packed now: into the cache when the block
/// has a slot there, else into `sc.kt`.
///
/// Slot `j0 / KV_BLOCK` contains one block, with a tag of the task's K
/// address, `j0` and the key count. A block is reused only when the first
/// two match and it has at least `kb` keys. So another KV head or batch, a
/// block that starts elsewhere, or a shorter one packed earlier is
/// repacked. Tasks of one call with one K address read the same K rows, so
/// their blocks agree.
///
/// # Safety
///
/// As for [`attention_task`], with `sc` carved from the task's scratch and
/// `kblk` at key `j0` of the task's K rows.
#[inline(always)]
unsafe fn packed_kt<S: SimdF32, E: KvElem>(
    s: S,
    sc: &Scratch,
    t: &AttentionTask,
    kblk: *const E,
    j0: usize,
    kb: usize,
) -> *mut f32 {
    let d = t.head_dim;
    let slot = j0 / KV_BLOCK;
    let blocks = kt_cache_blocks(d);
    // SAFETY: the slot and its tag lie inside the kt_cache_len(d) f32 of
    // the cache. The tag is read and written unaligned because the cache
    // is f32-aligned only.
    unsafe {
        if t.kt_cache.is_null() || slot >= blocks {
            pack_kt(s, kblk, t.k_row_stride, d, kb, sc.kt);
            return sc.kt;
        }
        let kt = t.kt_cache.add(slot * d * KV_BLOCK);
        let tag = t.kt_cache.add(blocks * d * KV_BLOCK + slot * KT_TAG_F32).cast::<u64>();
        let want = [t.k as usize as u64, j0 as u64];
        let stored = [tag.read_unaligned(), tag.add(1).read_unaligned()];
        if stored != want || tag.add(2).read_unaligned() < kb as u64 {
            pack_kt(s, kblk, t.k_row_stride, d, kb, kt);
            for (i, x) in want.into_iter().chain([kb as u64]).enumerate() {
                tag.add(i).write_unaligned(x);
            }
        }
        kt
    }
}

/// Rows that [`softmax_full_rows`] updates in lockstep.
const SOFTMAX_ROWS: usize = 8;

/// Folds a block of `KV_BLOCK` scores that rows `r0 .. r0 + n` attend in
/// full and without modifiers into their online softmax. Each score x
/// becomes e^(x − m), with m the new running maximum. The row's sum goes
/// into its denominator vector, and when m grows, the denominator and the
/// accumulator are rescaled first. Sets `done[i]` for each row it updates and
/// leaves a row with a NaN or infinite score or maximum untouched.
///
/// Each phase runs over all rows before the next, so the rows' horizontal
/// reductions and exponentials overlap instead of forming one chain.
///
/// # Safety
///
/// `sc` is carved for at least `r0 + n` rows with accumulator rows of
/// `dvp` f32, a multiple of the lane count; `n <= SOFTMAX_ROWS`.
#[inline(always)]
unsafe fn softmax_full_rows<S: SimdF32>(
    s: S,
    sc: &Scratch,
    dvp: usize,
    r0: usize,
    n: usize,
    done: &mut [bool; SOFTMAX_ROWS],
) {
    let l = S::LANES;
    debug_assert!(n <= SOFTMAX_ROWS && KV_BLOCK.is_multiple_of(l) && dvp.is_multiple_of(l));
    let mut m_new = [0.0f32; SOFTMAX_ROWS];
    // SAFETY: every access stays inside the score, maximum, denominator
    // and accumulator rows r0 .. r0 + n of the scratch.
    unsafe {
        for i in 0..n {
            let row = sc.scores.add((r0 + i) * KV_BLOCK);
            let mut mx = s.splat(f32::NEG_INFINITY);
            let mut nan = s.mask_none();
            for x in (0..KV_BLOCK).step_by(l) {
                let v = s.load(row.add(x));
                mx = s.max(mx, v);
                nan = s.mask_or(nan, s.is_nan(v));
            }
            let block_max = s.reduce_max(mx);
            let m_old = *sc.m.add(r0 + i);
            // m_old is −inf before the first block, else finite here.
            done[i] = !s.mask_any(nan) && block_max.is_finite() && !m_old.is_nan() && m_old != f32::INFINITY;
            m_new[i] = m_old.max(block_max);
        }
        for i in 0..n {
            if !done[i] {
                continue;
            }
            let row = sc.scores.add((r0 + i) * KV_BLOCK);
            let vm = s.splat(m_new[i]);
            let mut sum = s.splat(0.0);
            for x in (0..KV_BLOCK).step_by(l) {
                let p = exp_nonpositive(s, s.sub(s.load(row.add(x)), vm));
                s.store(row.add(x), p);
                sum = s.add(sum, p);
            }
            let m_old = *sc.m.add(r0 + i);
            let lv = sc.l.add((r0 + i) * MAX_LANES);
            if m_new[i] == m_old {
                s.store(lv, s.add(s.load(lv), sum));
            } else {
                // e^(−inf) = 0 clears the state before the first block.
                let alpha = exp(s, s.splat(m_old - m_new[i]));
                s.store(lv, s.fma(s.load(lv), alpha, sum));
                let acc = sc.acc.add((r0 + i) * dvp);
                for x in (0..dvp).step_by(l) {
                    s.store(acc.add(x), s.mul(s.load(acc.add(x)), alpha));
                }
                *sc.m.add(r0 + i) = m_new[i];
            }
        }
    }
}

/// Applies the modifiers and masks of row `r` to its scores of the block
/// of `kb` keys at key `j0`, and folds them into the row's online softmax.
/// Masked scores become probability 0.
///
/// # Safety
///
/// As for [`attention_task`], with `sc` carved for the task's rows and
/// accumulator rows of `dvp` f32.
#[inline(always)]
unsafe fn softmax_row<S: SimdF32>(s: S, t: &AttentionTask, sc: &Scratch, dvp: usize, r: usize, j0: usize, kb: usize) {
    let (g, p) = (r % t.group, r / t.group);
    let pos = t.first_pos + p as i64;
    let (lo, hi) = t.key_range(pos);
    let a = (lo.max(j0 as i64) - j0 as i64).clamp(0, kb as i64) as usize;
    let e = (hi.min((j0 + kb) as i64) - j0 as i64).clamp(0, kb as i64) as usize;
    // SAFETY: the score, state and accumulator rows are row r of the
    // scratch; the bias and slope reads lie inside the task's tensors.
    unsafe {
        let srow = sc.scores.add(r * KV_BLOCK);
        if a >= e {
            scale_row(s, srow, KV_BLOCK, 0.0, true);
            return;
        }
        let bias = if t.bias.is_null() {
            core::ptr::null()
        } else {
            t.bias.add(g * t.bias_head_stride + p * t.bias_row_stride + j0 + a)
        };
        let mods = RowMods {
            bias,
            slope: if t.alibi.is_null() { 0.0 } else { *t.alibi.add(g) },
            dist0: (pos - (j0 + a) as i64) as f32,
            softcap: t.softcap,
        };
        let block_max = modify_and_max(s, srow.add(a), e - a, mods);
        let m_old = *sc.m.add(r);
        let m_new = if m_old.is_nan() || block_max.is_nan() { f32::NAN } else { m_old.max(block_max) };
        let sum = exp_and_sum(s, srow.add(a), e - a, m_new);
        for x in 0..a {
            *srow.add(x) = 0.0;
        }
        for x in e..kb {
            *srow.add(x) = 0.0;
        }
        let alpha = if m_old == m_new {
            1.0
        } else if m_old == f32::NEG_INFINITY {
            0.0
        } else {
            (m_old - m_new).exp()
        };
        let lv = sc.l.add(r * MAX_LANES);
        if alpha != 1.0 {
            s.store(lv, s.mul(s.load(lv), s.splat(alpha)));
            scale_row(s, sc.acc.add(r * dvp), dvp, alpha, false);
        }
        *lv += sum;
        *sc.m.add(r) = m_new;
    }
}

/// Runs one attention task: writes the normalized output rows and, when
/// `lse` is not null, the natural-log logsumexp of each row's scores.
///
/// Rows with no unmasked key get zeros and lse −inf. Only K and V rows in
/// the union of the rows' key ranges are read. A NaN score (from Q, K, the
/// bias or the modifiers) makes its row NaN.
///
/// NOTE: a NaN in a V row that any row of the task attends also reaches
/// the rows of the task that mask it, because their probability 0 times
/// NaN is NaN in the P·V tile.
///
/// # Safety
///
/// Every pointer of `task` covers the rows, heads, keys and dimensions it
/// describes at its strides; the outputs do not overlap the inputs or each
/// other; `scratch` covers `scratch_len(task.rows(), head_dim, v_head_dim)`
/// f32 that nothing else uses; `task.kt_cache` is null or covers
/// `kt_cache_len(head_dim)` f32 that only tasks of one thread use. Since
/// its last `kt_cache_reset`, tasks with the same K address read the same
/// K rows; `task.k` and `task.v` point at elements of type `E`; `MR <= 8`.
/// `DK` is the number of keys per dot-product tile.
/// `SCHEME` is the decode prefetch scheme, one of the `PREFETCH_*`
/// constants. It changes which hints go out and, through the number of
/// key runs, the order in which decode folds the blocks into the online
/// softmax, and so the rounding of the results.
#[inline(always)]
pub unsafe fn attention_task<
    S: SimdF32,
    E: KvElem,
    const MR: usize,
    const NV: usize,
    const DK: usize,
    const SCHEME: u8,
>(
    s: S,
    t: &AttentionTask,
    scratch: *mut f32,
) {
    let l = S::LANES;
    let rows = t.rows();
    if rows == 0 {
        return;
    }
    let (d, dv) = (t.head_dim, t.v_head_dim);
    let dp = d.next_multiple_of(l);
    let dvp = dv.next_multiple_of(l);
    let (k, v) = (t.k as *const E, t.v as *const E);
    let group = t.group;
    let q_mult = if t.softcap > 0.0 { t.scale / t.softcap } else { t.scale };

    // SAFETY: scratch offsets stay within scratch_len. Input
    // reads stay within the rows, keys and dims of the task, which the
    // caller's contract covers.
    unsafe {
        let sc = Scratch::carve(scratch, rows, d, dv);

        // Pack the scaled Q rows, zero-padded to dp.
        for r in 0..rows {
            let (g, p) = (r % group, r / group);
            let src = t.q.add(g * t.q_head_stride + p * t.q_row_stride);
            let dst = sc.q.add(r * dp);
            for x in 0..d {
                *dst.add(x) = *src.add(x) * q_mult;
            }
            for x in d..dp {
                *dst.add(x) = 0.0;
            }
            scale_row(s, sc.acc.add(r * dvp), dvp, 0.0, true);
            *sc.m.add(r) = f32::NEG_INFINITY;
            s.store(sc.l.add(r * MAX_LANES), s.splat(0.0));
        }

        let last_pos = t.first_pos + t.positions as i64 - 1;
        let task_lo = t.key_range(t.first_pos).0.max(0) as usize;
        let task_hi = t.key_range(last_pos).1.max(0) as usize;
        let dot = rows <= DOT_ROWS_MAX;
        let direct_v = dv % l == 0;
        // Decode streams K and V once, so it prefetches them. Prefill reads
        // each row many times from cache and prefetches nothing.
        let mut order = Blocks::new(task_lo, task_hi, if dot { decode_runs(SCHEME) } else { 1 });
        let mut cursor = if dot {
            // The P·V tile reads V in passes of NV vectors of columns, and
            // the columns left over in passes of one vector. A packed V block
            // is read whole.
            let passes = if direct_v { dvp / (NV * l) + dvp % (NV * l) / l } else { 1 };
            let lead = prefetch_lead(SCHEME, dv * core::mem::size_of::<E>(), passes);
            let mut c = Cursor::<S, E, SCHEME>::new(s, k, t.k_row_stride, d, v, t.v_row_stride, dv, order);
            c.advance(lead / 64);
            c
        } else {
            Cursor::idle(s)
        };

        while let Some((j0, kb)) = order.pop() {
            let kblk = k.add(j0 * t.k_row_stride);
            let vblk = v.add(j0 * t.v_row_stride);

            // Rows whose key range meets the block. Both ends of the range
            // are nondecreasing in the position, and rows go by position,
            // so they form one run [r_lo, r_hi). The products skip the rows
            // outside it, which the update below sets to probability 0.
            // Causal and sliding-window tasks have such rows in the blocks
            // at the edges of their key range.
            // Decode keeps every row.
            let (mut r_lo, mut r_hi) = if dot { (0, rows) } else { (rows, 0) };
            for r in (0..rows).filter(|_| !dot) {
                let (lo, hi) = t.key_range(t.first_pos + (r / group) as i64);
                if lo < (j0 + kb) as i64 && hi > j0 as i64 {
                    r_lo = r_lo.min(r);
                    r_hi = r + 1;
                }
            }
            let active = r_hi.saturating_sub(r_lo);

            // Scores of the block: rows × kb into sc.scores.
            if dot {
                let (q, ks, scores) = (sc.q, t.k_row_stride, sc.scores);
                cursor = s.outline(ScoresDotCall::<_, E, DK> { q, dp, rows, k: kblk, ks, d, kb, sc: scores, cursor });
            } else if active > 0 {
                let kt = packed_kt(s, &sc, t, kblk, j0, kb);
                let (q, scores) = (sc.q.add(r_lo * dp), sc.scores.add(r_lo * KV_BLOCK));
                gemm::<S, f32, MR, NV>(s, q, dp, kt, KV_BLOCK, scores, KV_BLOCK, active, KV_BLOCK, d, false, &mut ());
            }

            // Modifiers, masks and the online-softmax update. A block that
            // every row attends in full, without modifiers, takes the fast
            // path, which leaves rows with a NaN or infinite score to the
            // general one.
            let plain = t.softcap == 0.0 && t.bias.is_null() && t.alibi.is_null();
            let full = plain
                && kb == KV_BLOCK
                && t.key_range(last_pos).0 <= j0 as i64
                && t.key_range(t.first_pos).1 >= (j0 + kb) as i64;
            let mut r = 0;
            while r < rows {
                let n = (rows - r).min(SOFTMAX_ROWS);
                let mut done = [false; SOFTMAX_ROWS];
                if full {
                    softmax_full_rows(s, &sc, dvp, r, n, &mut done);
                }
                for (i, _) in done[..n].iter().enumerate().filter(|(_, &d)| !d) {
                    softmax_row(s, t, &sc, dvp, r + i, j0, kb);
                }
                r += n;
            }

            // acc += P · V over the kb keys of the block, for the rows that
            // attend any of them.
            if dot && direct_v {
                let (a, b, ldb, c, m, k) = (sc.scores, vblk, t.v_row_stride, sc.acc, rows, kb);
                let call = GemmCall::<E, _, MR, NV> { a, lda: KV_BLOCK, b, ldb, c, ldc: dvp, m, n: dvp, k, accumulate: true, hook: cursor };
                cursor = s.outline(call);
                continue;
            }
            let (scores, acc) = (sc.scores.add(r_lo * KV_BLOCK), sc.acc.add(r_lo * dvp));
            if active > 0 && direct_v {
                let vs = t.v_row_stride;
                gemm::<S, E, MR, NV>(s, scores, KV_BLOCK, vblk, vs, acc, dvp, active, dvp, kb, true, &mut ());
            } else if active > 0 {
                // The packing reads the block's V lines at once, so the
                // cursor moves past them at once.
                cursor.lines(kb * (dv * core::mem::size_of::<E>()).div_ceil(64));
                pack_v(s, vblk, t.v_row_stride, dv, dvp, kb, sc.vp);
                gemm::<S, f32, MR, NV>(s, scores, KV_BLOCK, sc.vp, dvp, acc, dvp, active, dvp, kb, true, &mut ());
            }
        }

        // Normalize and write the rows.
        for r in 0..rows {
            let (g, p) = (r % group, r / group);
            let (m, sum) = (*sc.m.add(r), s.reduce_add(s.load(sc.l.add(r * MAX_LANES))));
            let empty = m == f32::NEG_INFINITY;
            let dst = t.out.add(g * t.out_head_stride + p * t.out_row_stride);
            let src = sc.acc.add(r * dvp);
            let f = s.splat(if empty { 0.0 } else { 1.0 / sum });
            let mut x = 0;
            while x + l <= dv {
                s.store(dst.add(x), s.mul(s.load(src.add(x)), f));
                x += l;
            }
            if x < dv {
                s.store_tail(dst.add(x), dv - x, s.mul(s.load(src.add(x)), f));
            }
            if empty {
                // 0 · NaN from a NaN accumulator must not leak into an
                // empty row; the accumulator is exactly 0 there anyway.
                for x in 0..dv {
                    *dst.add(x) = 0.0;
                }
            }
            if !t.lse.is_null() {
                *t.lse.add(g * t.lse_head_stride + p * t.lse_row_stride) =
                    if empty { f32::NEG_INFINITY } else { m + sum.ln() };
            }
        }
    }
}

/// Expands to the per-instruction-set entry points of this family, one per
/// K/V element type and decode prefetch scheme, with the GEMM register tile
/// `MR × NV` vectors and `DK` keys per dot-product tile. Entry points of one
/// element type differ only in the scheme. Those with the same key runs
/// give results equal bit for bit.
macro_rules! attention_kernels {
    (
        $token:ty, [$($feature:literal),*], $mr:literal, $nv:literal, $dk:literal,
        $f32:ident, $f32p:ident, $f32l2:ident, $f16:ident, $f16l2:ident, $bf16:ident, $bf16l2:ident
    ) => {
        $crate::attention::attention_kernels!(@one $token, [$($feature),*], $mr, $nv, $dk, $f32, f32, PREFETCH_L1,
            "f32", "requests into L1");
        $crate::attention::attention_kernels!(@one $token, [$($feature),*], $mr, $nv, $dk, $f32p, f32, PREFETCH_L1_PACED,
            "f32", "paced requests into L1, for K and V read from DRAM");
        $crate::attention::attention_kernels!(@one $token, [$($feature),*], $mr, $nv, $dk, $f32l2, f32, PREFETCH_L2,
            "f32", "requests into L2");
        $crate::attention::attention_kernels!(@one $token, [$($feature),*], $mr, $nv, $dk, $f16, crate::attention::F16Bits,
            PREFETCH_L1, "f16", "requests into L1");
        $crate::attention::attention_kernels!(@one $token, [$($feature),*], $mr, $nv, $dk, $f16l2, crate::attention::F16Bits,
            PREFETCH_L2, "f16", "requests into L2");
        $crate::attention::attention_kernels!(@one $token, [$($feature),*], $mr, $nv, $dk, $bf16, crate::attention::Bf16Bits,
            PREFETCH_L1, "bf16", "requests into L1");
        $crate::attention::attention_kernels!(@one $token, [$($feature),*], $mr, $nv, $dk, $bf16l2, crate::attention::Bf16Bits,
            PREFETCH_L2, "bf16", "requests into L2");
    };
    (@one $token:ty, [$($feature:literal),*], $mr:literal, $nv:literal, $dk:literal, $name:ident, $elem:ty, $scheme:ident,
        $dtype:literal, $hint:literal) => {
        #[doc = concat!("Runs an attention task with ", $dtype, " K and V and decode prefetch as ", $hint, ".")]
        #[doc = concat!("The scheme is [`", stringify!($scheme), "`](crate::attention::", stringify!($scheme), "),")]
        /// and the task is as for [`attention_task`](crate::attention::attention_task).
        ///
        /// # Safety
        ///
        #[doc = concat!("As for `attention_task` with ", $dtype, " elements, and the CPU runs this")]
        /// instruction set.
        $(#[target_feature(enable = $feature)])*
        pub unsafe fn $name(task: &crate::attention::AttentionTask, scratch: *mut f32) {
            // SAFETY: the caller guarantees the ISA and the task contract.
            unsafe {
                crate::attention::attention_task::<_, $elem, $mr, $nv, $dk, { crate::attention::$scheme }>(
                    <$token>::new_unchecked(),
                    task,
                    scratch,
                )
            }
        }
    };
}
use attention_kernels;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::scalar::Scalar;

    /// Returns a prefill task over K rows of `d` contiguous f32 at `k`
    /// with the Kᵀ cache `cache`. Only the fields that `packed_kt` reads
    /// matter.
    fn cache_task(k: *const f32, d: usize, cache: *mut f32) -> AttentionTask {
        AttentionTask {
            q: core::ptr::null(),
            q_head_stride: 0,
            q_row_stride: 0,
            k: k.cast(),
            k_row_stride: d,
            v: core::ptr::null(),
            v_row_stride: 0,
            group: 1,
            positions: 16,
            head_dim: d,
            v_head_dim: d,
            scale: 1.0,
            softcap: 0.0,
            first_pos: 0,
            kv_begin: 0,
            kv_end: 0,
            causal: false,
            window: 0,
            bias: core::ptr::null(),
            bias_head_stride: 0,
            bias_row_stride: 0,
            alibi: core::ptr::null(),
            out: core::ptr::null_mut(),
            out_head_stride: 0,
            out_row_stride: 0,
            lse: core::ptr::null_mut(),
            lse_head_stride: 0,
            lse_row_stride: 0,
            kt_cache: cache,
        }
    }

    /// Packs Kᵀ of keys `j0 .. j0 + kb` through the cache and returns
    /// whether the block came from the cache slot, with columns `0 .. kb`
    /// of each of its `d` rows.
    fn pack(task: &AttentionTask, scratch: &mut [f32], j0: usize, kb: usize) -> (bool, Vec<Vec<f32>>) {
        let d = task.head_dim;
        // SAFETY: the scratch is sized for the task's 16 rows, and the task's
        // K rows cover the keys of every call below.
        unsafe {
            let sc = Scratch::carve(scratch.as_mut_ptr(), task.rows(), d, d);
            let kblk = (task.k as *const f32).add(j0 * d);
            let kt = packed_kt(Scalar, &sc, task, kblk, j0, kb);
            let cols = (0..d).map(|x| (0..kb).map(|j| *kt.add(x * KV_BLOCK + j)).collect()).collect();
            (kt != sc.kt, cols)
        }
    }

    #[test]
    fn packed_keys_reused_only_when_valid() {
        let d = 12;
        let keys = 200;
        let mut k: Vec<f32> = (0..keys * d).map(|i| i as f32).collect();
        let want = |k: &[f32], j0: usize, kb: usize| -> Vec<Vec<f32>> {
            (0..d).map(|x| (0..kb).map(|j| k[(j0 + j) * d + x]).collect()).collect()
        };
        let mut scratch = vec![0.0f32; scratch_len(16, d, d)];
        let mut cache = vec![f32::NAN; kt_cache_len(d)];
        // SAFETY: the cache covers kt_cache_len(d) f32.
        unsafe { kt_cache_reset(cache.as_mut_ptr(), d) };
        let task = cache_task(k.as_ptr(), d, cache.as_mut_ptr());

        assert_eq!(pack(&task, &mut scratch, 0, 64), (true, want(&k, 0, 64)), "first pack of block 0");
        // Changed K at the same address: the cache still returns the block
        // packed before, which is what a task of the same call relies on.
        let old = k.clone();
        k[5] = -1.0;
        assert_eq!(pack(&task, &mut scratch, 0, 64), (true, want(&old, 0, 64)), "reuse of block 0");
        // SAFETY: as above.
        unsafe { kt_cache_reset(cache.as_mut_ptr(), d) };
        assert_eq!(pack(&task, &mut scratch, 0, 64), (true, want(&k, 0, 64)), "block 0 after a reset");

        // A block of 10 keys, then the full block at the same key.
        assert_eq!(pack(&task, &mut scratch, 64, 10), (true, want(&k, 64, 10)), "short block 1");
        k[70 * d] = -2.0;
        assert_eq!(pack(&task, &mut scratch, 64, 64), (true, want(&k, 64, 64)), "block 1 grown to 64 keys");
        // A shorter block at the same key reuses the longer one.
        k[65 * d] = -3.0;
        assert_eq!(pack(&task, &mut scratch, 64, 32).1[0][1], 65.0 * d as f32, "block 1 reused for 32 keys");
        // A block that starts at another key of the same slot.
        assert_eq!(pack(&task, &mut scratch, 70, 64), (true, want(&k, 70, 64)), "block at key 70");
        // Another K address: repacked.
        let k2: Vec<f32> = k.iter().map(|v| v + 0.5).collect();
        let task2 = cache_task(k2.as_ptr(), d, cache.as_mut_ptr());
        assert_eq!(pack(&task2, &mut scratch, 0, 64), (true, want(&k2, 0, 64)), "block 0 of another K");
        // No cache: packed into the scratch.
        let task3 = cache_task(k.as_ptr(), d, core::ptr::null_mut());
        assert_eq!(pack(&task3, &mut scratch, 0, 64), (false, want(&k, 0, 64)), "block 0 without a cache");
    }

    /// Blocks in the order `Blocks` yields them for keys `lo .. hi`.
    fn blocks(lo: usize, hi: usize, runs: usize) -> Vec<(usize, usize)> {
        let mut b = Blocks::new(lo, hi, runs);
        core::iter::from_fn(|| b.pop()).collect()
    }

    #[test]
    fn blocks_in_turn() {
        for (lo, hi) in [(0, 0), (5, 5), (0, 1), (3, 64), (0, 64), (0, 65), (7, 300), (0, 1024), (100, 1000)] {
            for runs in 1..=RUNS {
                let order = blocks(lo, hi, runs);
                let mut keys: Vec<usize> = order.iter().flat_map(|&(j, n)| j..j + n).collect();
                keys.sort_unstable();
                assert_eq!(keys, (lo..hi).collect::<Vec<_>>(), "keys {lo}..{hi}, runs {runs}: {order:?}");
                assert!(order.iter().all(|&(_, n)| (1..=KV_BLOCK).contains(&n)), "keys {lo}..{hi}: {order:?}");
                // With two runs of several blocks, consecutive blocks come
                // from different runs until one runs out.
                if runs == 2 && hi - lo > 2 * KV_BLOCK {
                    assert!(order[1].0 > order[0].0 + KV_BLOCK, "keys {lo}..{hi}: {order:?}");
                }
            }
        }
    }

    /// Returns the line addresses, as element offsets from K or V, that the
    /// cursor names from its start, in order.
    fn walked<E: KvElem, const SCHEME: u8>(k: *const E, v: *const E, ks: usize, d: usize, vs: usize, dv: usize, lo: usize, hi: usize) -> Vec<(bool, usize)> {
        let mut c = Cursor::<Scalar, E, SCHEME>::new(Scalar, k, ks, d, v, vs, dv, Blocks::new(lo, hi, decode_runs(SCHEME)));
        let mut out = Vec::new();
        c.walk(
            usize::MAX >> 1,
            |p| {
                let (pk, pv) = (p as usize, v as usize);
                out.push(if pk >= pv { (true, (pk - pv) / size_of::<E>()) } else { (false, (pk - k as usize) / size_of::<E>()) });
            },
            |_| {},
        );
        out
    }

    fn check_walk<E: KvElem>(ks: usize, d: usize, vs: usize, dv: usize, lo: usize, hi: usize) {
        let line = 64 / size_of::<E>();
        // Made-up addresses with K below V. The cursor only computes
        // addresses and never reads them.
        let k = 4096 as *const E;
        let v = k.wrapping_add(hi * ks + 64);
        let want = |runs: usize| {
            let mut want = Vec::new();
            for (j0, n) in blocks(lo, hi, runs) {
                for (is_v, stride, len) in [(false, ks, d), (true, vs, dv)] {
                    for key in j0..j0 + n {
                        want.extend((0..len).step_by(line).map(|x| (is_v, key * stride + x)));
                    }
                }
            }
            want
        };
        let shape = format!("ks {ks} d {d} vs {vs} dv {dv} keys {lo}..{hi}");
        assert_eq!(walked::<E, PREFETCH_L1>(k, v, ks, d, vs, dv, lo, hi), want(RUNS), "L1: {shape}");
        assert_eq!(walked::<E, PREFETCH_L1_PACED>(k, v, ks, d, vs, dv, lo, hi), want(RUNS), "paced: {shape}");
        assert_eq!(walked::<E, PREFETCH_L2>(k, v, ks, d, vs, dv, lo, hi), want(1), "L2: {shape}");
    }

    #[test]
    fn cursor_read_order() {
        check_walk::<f32>(128, 128, 128, 128, 0, 300);
        check_walk::<f32>(200, 72, 48, 40, 3, 130);
        check_walk::<F16Bits>(128, 128, 128, 128, 0, 1000);
        check_walk::<F16Bits>(576, 576, 512, 512, 10, 75);
        check_walk::<Bf16Bits>(100, 33, 64, 17, 0, 64);
        check_walk::<f32>(128, 128, 128, 128, 5, 5);
    }

    /// Returns the lines and the page touches that the cursor names from its
    /// start, as addresses.
    fn touched<E: KvElem, const SCHEME: u8>(k: *const E, v: *const E, ks: usize, d: usize, vs: usize, dv: usize, lo: usize, hi: usize) -> (Vec<usize>, Vec<usize>) {
        let mut c = Cursor::<Scalar, E, SCHEME>::new(Scalar, k, ks, d, v, vs, dv, Blocks::new(lo, hi, decode_runs(SCHEME)));
        let (mut lines, mut touches) = (Vec::new(), Vec::new());
        c.walk(usize::MAX >> 1, |p| lines.push(p as usize), |p| touches.push(p as usize));
        (lines, touches)
    }

    /// Checks that the cursor touches, for f32 K and V under the L1
    /// schemes only, the address [`PAGE_TOUCH_LEAD`] past each line that
    /// starts a page, and nothing more than that far past the task's rows.
    fn check_touches<E: KvElem>(base: usize, ks: usize, d: usize, vs: usize, dv: usize, lo: usize, hi: usize) {
        let size = size_of::<E>();
        // Made-up addresses: the cursor only computes them.
        let k = base as *const E;
        let v = k.wrapping_add(hi * ks + 4096);
        let k_rows = (base + lo * ks * size, base + ((hi - 1) * ks + d) * size);
        let v_rows = (v as usize + lo * vs * size, v as usize + ((hi - 1) * vs + dv) * size);
        let shape = format!("base {base:#x} ks {ks} d {d} vs {vs} dv {dv} keys {lo}..{hi}");
        for scheme in [PREFETCH_L1, PREFETCH_L1_PACED, PREFETCH_L2] {
            let (lines, touches) = match scheme {
                PREFETCH_L1 => touched::<E, PREFETCH_L1>(k, v, ks, d, vs, dv, lo, hi),
                PREFETCH_L1_PACED => touched::<E, PREFETCH_L1_PACED>(k, v, ks, d, vs, dv, lo, hi),
                _ => touched::<E, PREFETCH_L2>(k, v, ks, d, vs, dv, lo, hi),
            };
            let mut want = Vec::new();
            if size == 4 && scheme != PREFETCH_L2 {
                want.extend(lines.iter().filter(|&&a| a % PAGE_BYTES < 64).map(|&a| a + PAGE_TOUCH_LEAD));
                assert!(!want.is_empty(), "scheme {scheme}: no page touches: {shape}");
            }
            assert_eq!(touches, want, "scheme {scheme}: {shape}");
            for &t in &touches {
                let (start, end) = if t >= v_rows.0 + PAGE_TOUCH_LEAD { v_rows } else { k_rows };
                let (start, end) = (start + PAGE_TOUCH_LEAD, end + PAGE_TOUCH_LEAD);
                assert!(t >= start, "scheme {scheme}: touch {t:#x} below {start:#x}: {shape}");
                assert!(t < end, "scheme {scheme}: touch {t:#x} at or past {end:#x}: {shape}");
            }
        }
    }

    #[test]
    fn page_touches_follow_pages() {
        // Contiguous f32 rows of 128 from a page boundary: one touch per page.
        check_touches::<f32>(1 << 20, 128, 128, 128, 128, 0, 1000);
        // A base off the line grid, strided rows and a key range that does
        // not start at 0.
        check_touches::<f32>((1 << 20) + 8, 1024, 128, 1024, 128, 3, 700);
        check_touches::<f32>(1 << 20, 576, 576, 512, 512, 10, 400);
        // f16 and bf16 never touch.
        check_touches::<F16Bits>(1 << 20, 128, 128, 128, 128, 0, 1000);
        check_touches::<Bf16Bits>(1 << 20, 128, 128, 128, 128, 0, 1000);
    }

    #[test]
    fn prefetch_lead_by_passes() {
        // f32 rows of 128: a 32 KiB V block.
        for (scheme, base) in [(PREFETCH_L1, PREFETCH_LEAD), (PREFETCH_L1_PACED, PREFETCH_LEAD_PACED), (PREFETCH_L2, PREFETCH_LEAD)] {
            assert_eq!(prefetch_lead(scheme, 512, 1), base, "scheme {scheme}, 1 pass");
            assert_eq!(prefetch_lead(scheme, 512, 2), base, "scheme {scheme}, 2 passes");
            assert_eq!(prefetch_lead(scheme, 512, 8), base + (24 << 10), "scheme {scheme}, 8 passes");
            assert_eq!(prefetch_lead(scheme, 512, 0), base, "scheme {scheme}, 0 passes");
        }
    }

    #[test]
    fn cursor_idle() {
        let mut c = Cursor::<Scalar, f32, PREFETCH_L1>::idle(Scalar);
        let (mut n, mut touches) = (0, 0);
        c.walk(1000, |_| n += 1, |_| touches += 1);
        c.advance(1000);
        assert_eq!((n, touches), (0, 0));
    }
}
