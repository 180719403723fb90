//! General matrix multiply: C = α·op(A)·op(B) + β·C over strided matrices,
//! with f32, f16 or bf16 inputs, f32 accumulation and f32 output.
//!
//! Two paths:
//! - the packed path (BLIS loop order jc → pc → ic → jr → ir): B blocks of
//!   `kc × nc` and A blocks of `mc × kc` are packed into micro-panels and
//!   multiplied by the register-tile kernel of the dispatch level;
//! - the skinny path for m or n in 1..=16: the small operand is copied
//!   dense and the large one is streamed unpacked, once per column strip.
//!   Its dot form serves a B with contiguous columns (x·Wᵀ with W stored
//!   row-major), and it also takes m up to [`DOTS_MAX_ROWS`] when those
//!   rows of A fit in L2.
//!
//! Semantics shared by both: β = 0 never reads C, so NaN in C does not
//! leak; α = 0 or k = 0 skips A·B and gives β·C; m = 0 or n = 0 touches
//! nothing.

mod api;
mod blocking;
mod pack;

pub use api::{gemm_mixed, sgemm, sgemm_strided as sgemm_strided_safe, GemmInput, Layout, Transpose};
pub(crate) use api::{
    check_output_strides as api_check_output_strides, extent as api_extent, op_strides as api_op_strides,
    stored_width as api_stored_width,
};
pub(crate) use blocking::{blocking_for, cache_sizes, CacheSizes};
pub(crate) use pack::Operand;

use crate::dispatch::kernels;
use crate::dtype::Dtype;
use crate::error::Result;
use crate::threads::{num_threads, parallel_for, SharedPtr};
use crate::workspace::{PerRange, Workspace};

type TileFn = unsafe fn(usize, f32, *const f32, *const f32, f32, *mut f32, isize, isize, usize, usize);
type SkinnyRowsFn = unsafe fn(usize, usize, usize, *const f32, *const f32, usize, *mut f32, usize, *mut f32, usize);
type SkinnyRowsHalfFn =
    unsafe fn(usize, usize, usize, *const f32, *const u16, usize, *mut f32, usize, *mut f32, usize);
type Bf16TileFn = unsafe fn(usize, f32, *const u16, *const u16, f32, *mut f32, isize, isize, usize, usize);
type SkinnyDotsFn =
    unsafe fn(usize, usize, usize, f32, *const f32, *const f32, usize, f32, *mut f32, isize, isize);
type SkinnyDotsHalfFn =
    unsafe fn(usize, usize, usize, f32, *const f32, *const u16, usize, f32, *mut f32, isize, isize);
type SkinnyDotsBf16Fn =
    unsafe fn(usize, usize, usize, f32, *const u16, *const u16, usize, f32, *mut f32, isize, isize);

/// The GEMM family's entry points at one dispatch level.
pub(crate) struct GemmKernels {
    tile: TileFn,
    mr: usize,
    nr: usize,
    skinny_rows: SkinnyRowsFn,
    skinny_rows_f16: SkinnyRowsHalfFn,
    skinny_rows_bf16: SkinnyRowsHalfFn,
    skinny_dots: SkinnyDotsFn,
    skinny_dots_f16: SkinnyDotsHalfFn,
    skinny_dots_bf16: SkinnyDotsHalfFn,
    /// Tile kernel for bf16 × bf16 with the same `mr × nr`, where the
    /// level has one; it also needs the AVX512_BF16 feature at run time.
    bf16_tile: Option<Bf16TileFn>,
    /// Skinny row form for bf16 B and bf16-exact A with the bf16 dot
    /// product, where the level has one; it also needs AVX512_BF16.
    skinny_rows_bf16_dot: Option<SkinnyRowsHalfFn>,
    /// Skinny dot form for bf16 B and bf16-exact A with the bf16 dot
    /// product, under the same conditions.
    skinny_dots_bf16_dot: Option<SkinnyDotsBf16Fn>,
}

macro_rules! gemm_table {
    (
        $module:ident, $tile:ident, $rows:ident, $dots:ident, $rows_f16:ident, $rows_bf16:ident,
        $dots_f16:ident, $dots_bf16:ident
    ) => {{
        use mlak_kernels::gemm::$module as k;
        GemmKernels {
            tile: k::$tile,
            mr: k::MR,
            nr: k::NR,
            skinny_rows: k::$rows,
            skinny_rows_f16: k::$rows_f16,
            skinny_rows_bf16: k::$rows_bf16,
            skinny_dots: k::$dots,
            skinny_dots_f16: k::$dots_f16,
            skinny_dots_bf16: k::$dots_bf16,
            bf16_tile: None,
            skinny_rows_bf16_dot: None,
            skinny_dots_bf16_dot: None,
        }
    }};
}

impl GemmKernels {
    pub(crate) const SCALAR: Self =
        gemm_table!(
            scalar,
            f32_gemm_4x4_scalar,
            f32_gemm_skinny_rows_scalar,
            f32_gemm_skinny_dots_scalar,
            f16_gemm_skinny_rows_scalar,
            bf16_gemm_skinny_rows_scalar,
            f16_gemm_skinny_dots_scalar,
            bf16_gemm_skinny_dots_scalar
        );
    #[cfg(target_arch = "x86_64")]
    pub(crate) const AVX2: Self =
        gemm_table!(
            avx2,
            f32_gemm_6x16_avx2,
            f32_gemm_skinny_rows_avx2,
            f32_gemm_skinny_dots_avx2,
            f16_gemm_skinny_rows_avx2,
            bf16_gemm_skinny_rows_avx2,
            f16_gemm_skinny_dots_avx2,
            bf16_gemm_skinny_dots_avx2
        );
    #[cfg(target_arch = "x86_64")]
    pub(crate) const AVX512: Self = GemmKernels {
        bf16_tile: Some(mlak_kernels::gemm::avx512::bf16_gemm_12x32_avx512bf16),
        skinny_rows_bf16_dot: Some(mlak_kernels::gemm::avx512::bf16_gemm_skinny_rows_avx512bf16),
        skinny_dots_bf16_dot: Some(mlak_kernels::gemm::avx512::bf16_gemm_skinny_dots_avx512bf16),
        ..gemm_table!(
            avx512,
            f32_gemm_12x32_avx512,
            f32_gemm_skinny_rows_avx512,
            f32_gemm_skinny_dots_avx512,
            f16_gemm_skinny_rows_avx512,
            bf16_gemm_skinny_rows_avx512,
            f16_gemm_skinny_dots_avx512,
            bf16_gemm_skinny_dots_avx512
        )
    };
    #[cfg(target_arch = "aarch64")]
    pub(crate) const NEON: Self =
        gemm_table!(
            neon,
            f32_gemm_8x12_neon,
            f32_gemm_skinny_rows_neon,
            f32_gemm_skinny_dots_neon,
            f16_gemm_skinny_rows_neon,
            bf16_gemm_skinny_rows_neon,
            f16_gemm_skinny_dots_neon,
            bf16_gemm_skinny_dots_neon
        );
}

/// Largest small dimension that takes the skinny path.
pub(crate) const SKINNY_MAX: usize = 16;

/// Multiply-adds per thread below which a call uses fewer threads. With
/// the persistent workers, 2 threads on one Zen 5 machine took 0.99x the
/// 1-thread time at 64³ (2^18 multiply-adds), 0.87x at 96³, 0.76x at 128³
/// and 0.66x for 1 × 1024 × 1024.
const MIN_MACS_PER_THREAD: usize = 1 << 18;

/// Computes C = α·A·B + β·C for an m×k matrix A, a k×n matrix B and an m×n
/// matrix C, all f32. Element (i, j) of a matrix X sits at
/// `x + i*rs_x + j*cs_x` (strides in elements, any sign). β = 0 never reads
/// C, so NaN in C does not leak; α = 0 skips A·B; k = 0 gives β·C; m = 0 or
/// n = 0 touches nothing.
///
/// # Safety
///
/// Every element addressed by the shapes and strides is valid (readable
/// for A and B, readable and writable for C), and C overlaps neither A nor
/// B nor itself (distinct (i, j) map to distinct addresses).
// The f32 entry point for other kernel families' drivers.
#[allow(clippy::too_many_arguments, dead_code)]
pub(crate) unsafe fn sgemm_strided(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: *const f32,
    rs_a: isize,
    cs_a: isize,
    b: *const f32,
    rs_b: isize,
    cs_b: isize,
    beta: f32,
    c: *mut f32,
    rs_c: isize,
    cs_c: isize,
) -> Result<()> {
    let a = Operand { ptr: a.cast(), dtype: Dtype::F32, rs: rs_a, cs: cs_a };
    let b = Operand { ptr: b.cast(), dtype: Dtype::F32, rs: rs_b, cs: cs_b };
    // SAFETY: forwarded contract.
    unsafe { gemm_strided(m, n, k, alpha, a, b, beta, c, rs_c, cs_c) }
}

/// Computes C = α·A·B + β·C as [`sgemm_strided`] does, with A and B each
/// f32, f16 or bf16 as their `Operand::dtype` says. Products are formed and
/// accumulated in f32 from the exactly widened inputs.
///
/// # Safety
///
/// As for [`sgemm_strided`], with strides counted in elements of each
/// operand's dtype.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_strided(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: Operand,
    b: Operand,
    beta: f32,
    c: *mut f32,
    rs_c: isize,
    cs_c: isize,
) -> Result<()> {
    if m == 0 || n == 0 {
        return Ok(());
    }
    let table = &kernels()?.gemm;
    if alpha == 0.0 || k == 0 {
        // SAFETY: C is valid by the caller's contract.
        unsafe { scale_c(m, n, beta, c, rs_c, cs_c) };
        return Ok(());
    }

    // The kernels store rows of C with vector stores, so a column-major C
    // is handled as the transposed product Cᵀ = Bᵀ·Aᵀ, which is row-major.
    let problem = if cs_c != 1 && rs_c == 1 {
        Problem { m: n, n: m, k, alpha, a: b.t(), b: a.t(), beta, c: SharedPtr(c), rs_c: cs_c, cs_c: rs_c }
    } else {
        Problem { m, n, k, alpha, a, b, beta, c: SharedPtr(c), rs_c, cs_c }
    };
    let threads = num_threads()?;
    // SAFETY: forwarded contract.
    unsafe {
        if let Some(done) = skinny(table, &problem, threads)? {
            return Ok(done);
        }
        packed(table, &problem, threads)
    }
}

/// One validated product, as the paths see it.
#[derive(Clone, Copy)]
struct Problem {
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: Operand,
    b: Operand,
    beta: f32,
    c: SharedPtr<f32>,
    rs_c: isize,
    cs_c: isize,
}

impl Problem {
    /// The transposed product Cᵀ = Bᵀ·Aᵀ.
    fn t(self) -> Problem {
        Problem { m: self.n, n: self.m, a: self.b.t(), b: self.a.t(), rs_c: self.cs_c, cs_c: self.rs_c, ..self }
    }

    /// Returns the number of threads worth using for this product.
    fn threads(&self, available: usize) -> usize {
        let macs = self.m.saturating_mul(self.n).saturating_mul(self.k);
        (macs / MIN_MACS_PER_THREAD).clamp(1, available.max(1))
    }
}

/// Sets C = β·C, writing zeros without reading C when β = 0.
///
/// # Safety
///
/// Every element of the m×n matrix C is writable, and readable unless β = 0.
unsafe fn scale_c(m: usize, n: usize, beta: f32, c: *mut f32, rs_c: isize, cs_c: isize) {
    if beta == 1.0 {
        return;
    }
    for i in 0..m {
        for j in 0..n {
            // SAFETY: (i, j) is inside C by the caller's contract.
            unsafe {
                let p = c.offset(i as isize * rs_c + j as isize * cs_c);
                *p = if beta == 0.0 { 0.0 } else { beta * *p };
            }
        }
    }
}

/// Takes a GEMM workspace of `len` floats, reporting failure as a status.
/// Its contents are unspecified; see [`crate::workspace::take`].
fn workspace(len: usize) -> Result<Workspace> {
    crate::workspace::take(len, "a GEMM workspace")
}

/// Runs the skinny path when the product qualifies, returning `Some(())`
/// when it did: m (or n, through the transposed product) is at most
/// [`SKINNY_MAX`] and the large operand is f32 with unit stride along one
/// of its dimensions.
///
/// # Safety
///
/// As for [`gemm_strided`].
unsafe fn skinny(table: &GemmKernels, p: &Problem, threads: usize) -> Result<Option<()>> {
    let unit = |x: isize| x == 1;
    let candidates = [*p, p.t()];
    for q in candidates {
        if q.n <= SKINNY_MAX {
            continue;
        }
        if q.m > SKINNY_MAX {
            // Medium m with column-contiguous B, the x·Wᵀ of a linear
            // layer: the dot form reads each column of B once and needs no
            // packing, which the packed path cannot amortize over few rows.
            if unit(q.b.rs) && q.b.cs >= 0 && q.m <= dots_max_rows(cache_sizes()) {
                // SAFETY: forwarded contract.
                unsafe { skinny_dots(table, &q, threads)? };
                return Ok(Some(()));
            }
            continue;
        }
        if unit(q.b.cs) && unit(q.cs_c) && q.b.rs >= 0 && q.rs_c >= 0 {
            // SAFETY: forwarded contract.
            unsafe { skinny_rows(table, &q, threads)? };
            return Ok(Some(()));
        }
        if unit(q.b.rs) && q.b.cs >= 0 {
            // SAFETY: forwarded contract.
            unsafe { skinny_dots(table, &q, threads)? };
            return Ok(Some(()));
        }
    }
    Ok(None)
}

/// Column strips of the skinny path per thread task: 64 floats wide, so a
/// task never splits a cache line of C or B.
const SKINNY_STRIP: usize = 64;

/// Skinny path with row-contiguous B and C: C is scaled by beta, A is
/// copied in the kernel's depth-blocked layout and scaled by alpha, and the
/// kernel streams B (f32, or f16/bf16 widened on load) and accumulates
/// into C.
///
/// # Safety
///
/// As for [`gemm_strided`], with `b.cs == 1`, `cs_c == 1` and non-negative
/// `b.rs` and `rs_c`.
unsafe fn skinny_rows(table: &GemmKernels, p: &Problem, threads: usize) -> Result<()> {
    let mut a_km = workspace(mlak_kernels::gemm::skinny_rows_a_len(p.m, p.k))?;
    // The kernel's A layout is the panel layout of Aᵀ (k × m) with panels
    // of SKINNY_DEPTH_BLOCK depth steps, zero-padded at the end.
    // SAFETY: Aᵀ (k × m) is the caller's A, and a_km has room for the
    // padded panels.
    unsafe { pack::pack(p.a.t(), p.k, p.m, mlak_kernels::gemm::SKINNY_DEPTH_BLOCK, &mut a_km) };
    if p.alpha != 1.0 {
        a_km.iter_mut().for_each(|x| *x *= p.alpha);
    }
    // SAFETY: C is valid by the caller's contract; beta = 0 writes zeros
    // without reading it.
    unsafe { scale_c(p.m, p.n, p.beta, p.c.get(), p.rs_c, p.cs_c) };

    let strips = p.n.div_ceil(SKINNY_STRIP);
    let min_strips = strips.div_ceil(p.threads(threads));
    let dot = match p.b.dtype {
        Dtype::Bf16 => bf16_dot_kernel(table.skinny_rows_bf16_dot, &a_km),
        _ => None,
    };
    let half = match p.b.dtype {
        Dtype::F32 => None,
        Dtype::F16 => Some(table.skinny_rows_f16),
        Dtype::Bf16 => Some(dot.unwrap_or(table.skinny_rows_bf16)),
    };
    let (a_km, b, c) = (a_km.as_ptr() as usize, p.b.ptr as usize, p.c);
    // One block buffer per worker, allocated before any work so that no
    // allocation can fail after C has been written.
    let block_cols = match dot {
        Some(_) => skinny_dot_block_cols(cache_sizes(), p.m),
        None => skinny_block_cols(cache_sizes(), p.m),
    };
    let block_cols = block_cols.min(p.n);
    let block_len = p.m * (block_cols + mlak_kernels::gemm::SKINNY_BLOCK_PAD);
    let workers = threads.min(strips.div_ceil(min_strips)).max(1);
    let blocks = PerRange::new(workers, block_len, "a GEMM workspace")?;

    parallel_for(strips, min_strips, threads, |range| {
        let j0 = range.start * SKINNY_STRIP;
        let j1 = (range.end * SKINNY_STRIP).min(p.n);
        let (a, rs_b, c_strip) = (a_km as *const f32, p.b.rs as usize, c.get());
        let mut block = blocks.get();
        let bp = block.as_mut_ptr();
        // SAFETY: columns j0 .. j1 of B and C are inside the matrices, B's
        // element type matches the kernel chosen above, each worker writes
        // a disjoint column range of C, and `block` holds m rows of
        // block_cols + SKINNY_BLOCK_PAD floats.
        unsafe {
            match half {
                None => {
                    let b = (b as *const f32).add(j0);
                    (table.skinny_rows)(p.m, j1 - j0, p.k, a, b, rs_b, c_strip.add(j0), p.rs_c as usize, bp, block_cols)
                }
                Some(f) => {
                    let b = (b as *const u16).add(j0);
                    f(p.m, j1 - j0, p.k, a, b, rs_b, c_strip.add(j0), p.rs_c as usize, bp, block_cols)
                }
            }
        };
    });
    Ok(())
}

/// Returns `kernel` when it can run: the CPU has AVX512_BF16, and every
/// value of the packed A is a widened bf16 value (bf16 A scaled by a power
/// of two, say). The dot product's pairs of A are then exact.
fn bf16_dot_kernel<F>(kernel: Option<F>, a_packed: &[f32]) -> Option<F> {
    let kernel = kernel.filter(|_| crate::dispatch::cpu_features() & crate::dispatch::feature::AVX512_BF16 != 0)?;
    a_packed.iter().all(|x| x.to_bits() & 0xffff == 0).then_some(kernel)
}

/// Returns the columns per block of C in the skinny row form for m rows: a
/// quarter of L2, so the block stays there while B streams past, in whole
/// cache lines and at least 256 columns.
fn skinny_block_cols(caches: CacheSizes, m: usize) -> usize {
    (caches.l2 / 4 / (m.max(1) * 4)).max(256) / 16 * 16
}

/// Returns the columns per block of C for the bf16 dot-product row form
/// with m rows: about 1.5 times L1d of C, in whole 32-column steps and at
/// least 256 columns. On one AVX-512 machine (AMD Zen 4, 32 KiB L1d, 1 MiB
/// L2) with k = n = 4096, this ran 8% (m = 8) to 18% (m = 16) faster than
/// the quarter of L2 of [`skinny_block_cols`], and no slower at m = 4 and
/// 6. The widening kernels showed no such gain.
fn skinny_dot_block_cols(caches: CacheSizes, m: usize) -> usize {
    (caches.l1d * 3 / 2 / (m.max(1) * 4)).max(256) / 32 * 32
}

/// Shortest depth block of the dot form: below it the per-block
/// reductions and C updates stop being small next to the dot products.
const DOTS_MIN_DEPTH: usize = 256;

/// Rows beyond which the packed path beats the dot form even when A fits
/// in L2: its packing of B is then spread over enough rows. Measured on
/// one AVX-512 machine (1 MiB L2), where the crossover for x·Wᵀ with n
/// and k of 512 and 1024 lies between 128 and 256 rows.
const DOTS_MAX_ROWS: usize = 128;

/// Returns the largest m that takes the dot form beyond [`SKINNY_MAX`]. It
/// is at most [`DOTS_MAX_ROWS`]. The kernel rereads the rows of A for every
/// 4 columns of B, so one depth block of [`DOTS_MIN_DEPTH`] must fit in
/// half of L2.
fn dots_max_rows(caches: CacheSizes) -> usize {
    (caches.l2 / 2 / (DOTS_MIN_DEPTH * 4)).min(DOTS_MAX_ROWS)
}

/// Returns the depth block of the dot form for m rows: the deepest
/// multiple of 64 whose m rows of A fit in half of L2, but at least
/// [`DOTS_MIN_DEPTH`].
fn dots_depth(caches: CacheSizes, m: usize) -> usize {
    (caches.l2 / 2 / (m.max(1) * 4) / 64 * 64).max(DOTS_MIN_DEPTH)
}

/// Skinny path with column-contiguous B: each output is a dot product
/// along k. The depth runs in blocks whose rows of A, copied row-major,
/// fit in half of L2; later blocks add to the C that earlier ones wrote.
///
/// # Safety
///
/// As for [`gemm_strided`], with `b.rs == 1` and non-negative `b.cs`.
unsafe fn skinny_dots(table: &GemmKernels, p: &Problem, threads: usize) -> Result<()> {
    let kc = dots_depth(cache_sizes(), p.m).min(p.k);
    let mut a_rm = workspace(p.m * kc)?;
    // Room for A as bf16 (two values per float), used only with the bf16
    // dot-product kernel.
    let dot_possible = table.skinny_dots_bf16_dot.is_some() && p.b.dtype == Dtype::Bf16;
    let mut a_bf16 = workspace(if dot_possible { (p.m * kc).div_ceil(2) } else { 0 })?;
    let strips = p.n.div_ceil(SKINNY_STRIP);
    let min_strips = strips.div_ceil(p.threads(threads));
    for pc in (0..p.k).step_by(kc) {
        let kb = kc.min(p.k - pc);
        let beta = if pc == 0 { p.beta } else { 1.0 };
        // SAFETY: columns pc .. pc + kb of A (m × k) are read element by
        // element, and a_rm has room for m · kc floats.
        unsafe { pack::copy_dense(p.a.at(0, pc), p.m, kb, &mut a_rm) };
        // bf16 B with bf16-exact A runs on the bf16 dot product, with A
        // narrowed (exactly) to bf16 for it.
        let dot = match p.b.dtype {
            Dtype::Bf16 => bf16_dot_kernel(table.skinny_dots_bf16_dot, &a_rm[..p.m * kb]),
            _ => None,
        };
        if dot.is_some() {
            let narrow = as_u16(&mut a_bf16);
            for (out, x) in narrow.iter_mut().zip(&a_rm[..p.m * kb]) {
                *out = (x.to_bits() >> 16) as u16;
            }
        }
        let (a, a_bf16, c) = (a_rm.as_ptr() as usize, a_bf16.as_ptr() as usize, p.c);
        parallel_for(strips, min_strips, threads, |range| {
            let j0 = range.start * SKINNY_STRIP;
            let j1 = (range.end * SKINNY_STRIP).min(p.n);
            let (a, cs_b) = (a as *const f32, p.b.cs as usize);
            // SAFETY: columns j0 .. j1 and depth pc .. pc + kb of B, and
            // columns j0 .. j1 of C, are inside the matrices; B's element
            // type matches the kernel; the bf16 dot-product kernel gets the
            // m · kb values narrowed into a_bf16 above; each worker writes a
            // disjoint column range of C.
            unsafe {
                let b = p.b.at(pc, j0).ptr;
                let c = c.get().offset(j0 as isize * p.cs_c);
                let (n, alpha, rs_c, cs_c) = (j1 - j0, p.alpha, p.rs_c, p.cs_c);
                match p.b.dtype {
                    Dtype::F32 => (table.skinny_dots)(p.m, n, kb, alpha, a, b.cast(), cs_b, beta, c, rs_c, cs_c),
                    Dtype::F16 => (table.skinny_dots_f16)(p.m, n, kb, alpha, a, b.cast(), cs_b, beta, c, rs_c, cs_c),
                    Dtype::Bf16 => match dot {
                        Some(f) => f(p.m, n, kb, alpha, a_bf16 as *const u16, b.cast(), cs_b, beta, c, rs_c, cs_c),
                        None => (table.skinny_dots_bf16)(p.m, n, kb, alpha, a, b.cast(), cs_b, beta, c, rs_c, cs_c),
                    },
                }
            };
        });
    }
    Ok(())
}

/// Packed path: splits the larger of m and n across threads in whole
/// register tiles, then runs the blocked loops on each part with that
/// thread's own packing buffers, allocated up front so that no allocation
/// can fail after C has been written.
///
/// # Safety
///
/// As for [`gemm_strided`].
unsafe fn packed(table: &GemmKernels, p: &Problem, threads: usize) -> Result<()> {
    let (mr, nr) = (table.mr, table.nr);
    // bf16 × bf16 runs on the pair-dot-product kernel where the CPU has it.
    let bf16_tile = table.bf16_tile.filter(|_| {
        p.a.dtype == Dtype::Bf16
            && p.b.dtype == Dtype::Bf16
            && crate::dispatch::cpu_features() & crate::dispatch::feature::AVX512_BF16 != 0
    });
    let mut blk = blocking_for(cache_sizes(), mr, nr);
    if bf16_tile.is_some() {
        // Blocks of 2-byte elements at twice the depth take the bytes of
        // the f32 blocks, and halve the passes over C per depth, which
        // cost twice as much next to the 2x faster products.
        blk.kc *= 2;
    }
    let workers = p.threads(threads);
    let split_n = p.n >= p.m;
    let (len, unit) = if split_n { (p.n, nr) } else { (p.m, mr) };
    let units = len.div_ceil(unit);
    let per_worker = units.div_ceil(workers);
    let parts = units.div_ceil(per_worker);

    let kc = blk.kc.min(p.k);
    let mc = blk.mc.min(p.m.div_ceil(mr) * mr);
    let nc = blk.nc.min(p.n.div_ceil(nr) * nr);
    // The bf16 kernel's packed pairs (2 bytes each, kc rounded up to even,
    // which it is) fit in the f32 buffers sized below.
    let mut buffers = Vec::with_capacity(parts);
    for _ in 0..parts {
        // 16 spare floats let each buffer start on a 64-byte boundary, so
        // the kernels' 64-byte panel loads never split a cache line.
        buffers.push((workspace(mc * kc + 16)?, workspace(kc * nc + 16)?));
    }
    let buffers: Vec<_> = buffers.into_iter().map(std::sync::Mutex::new).collect();

    parallel_for(parts, 1, threads, |range| {
        for part in range {
            let lo = part * per_worker * unit;
            let hi = ((part + 1) * per_worker * unit).min(len);
            let mut guard = buffers[part].lock().unwrap_or_else(|e| e.into_inner());
            let (abuf, bbuf) = &mut *guard;
            let (a_skip, b_skip) = (abuf.as_ptr().align_offset(64).min(16), bbuf.as_ptr().align_offset(64).min(16));
            let (abuf, bbuf) = (&mut abuf[a_skip..], &mut bbuf[b_skip..]);
            // SAFETY: the part covers rows (or columns) lo .. hi of C and
            // the matching rows of A (or columns of B); parts are disjoint.
            unsafe {
                let sub = if split_n {
                    Problem { n: hi - lo, b: p.b.at(0, lo), c: SharedPtr(p.c.get().offset(lo as isize * p.cs_c)), ..*p }
                } else {
                    Problem { m: hi - lo, a: p.a.at(lo, 0), c: SharedPtr(p.c.get().offset(lo as isize * p.rs_c)), ..*p }
                };
                match bf16_tile {
                    Some(f) => packed_serial_bf16(f, mr, nr, &sub, blk, abuf, bbuf),
                    None => packed_serial(table, &sub, blk, abuf, bbuf),
                }
            }
        }
    });
    Ok(())
}

/// The blocked loops of the packed path on one thread.
///
/// # Safety
///
/// As for [`gemm_strided`]; `abuf` holds `mc · kc` and `bbuf` `kc · nc`
/// floats for the blocks `blk` clipped to the problem (rounded up to whole
/// tiles).
unsafe fn packed_serial(table: &GemmKernels, p: &Problem, blk: blocking::Blocking, abuf: &mut [f32], bbuf: &mut [f32]) {
    let (mr, nr) = (table.mr, table.nr);
    let c = p.c.get();
    for jc in (0..p.n).step_by(blk.nc) {
        let nb = blk.nc.min(p.n - jc);
        for pc in (0..p.k).step_by(blk.kc) {
            let kb = blk.kc.min(p.k - pc);
            // Later depth blocks add to what the first one stored.
            let beta = if pc == 0 { p.beta } else { 1.0 };
            // SAFETY: the block (pc .. pc + kb) × (jc .. jc + nb) is inside
            // B; bbuf holds nb rounded up to NR times kb floats.
            unsafe { pack::pack(p.b.at(pc, jc).t(), nb, kb, nr, bbuf) };
            for ic in (0..p.m).step_by(blk.mc) {
                let mb = blk.mc.min(p.m - ic);
                // SAFETY: the block (ic .. ic + mb) × (pc .. pc + kb) is
                // inside A; abuf holds mb rounded up to MR times kb floats.
                unsafe { pack::pack(p.a.at(ic, pc), mb, kb, mr, abuf) };
                for jr in (0..nb).step_by(nr) {
                    for ir in (0..mb).step_by(mr) {
                        let (i, j) = ((ic + ir) as isize, (jc + jr) as isize);
                        // SAFETY: micro-panels ir / mr and jr / nr are inside
                        // the packed buffers, and the clipped tile is inside C.
                        unsafe {
                            (table.tile)(
                                kb,
                                p.alpha,
                                abuf.as_ptr().add(ir * kb),
                                bbuf.as_ptr().add(jr * kb),
                                beta,
                                c.offset(i * p.rs_c + j * p.cs_c),
                                p.rs_c,
                                p.cs_c,
                                mr.min(mb - ir),
                                nr.min(nb - jr),
                            )
                        };
                    }
                }
            }
        }
    }
}

/// Reinterprets an f32 workspace as bf16 storage of twice the length.
fn as_u16(buf: &mut [f32]) -> &mut [u16] {
    // SAFETY: u16 has a smaller alignment than f32, every bit pattern is a
    // valid u16, and the new slice covers exactly the same bytes.
    unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u16>(), buf.len() * 2) }
}

/// The blocked loops of the packed path for bf16 × bf16 on one thread,
/// with the AVX512_BF16 tile kernel `tile` of size `mr × nr`.
///
/// # Safety
///
/// As for [`packed_serial`], with A and B bf16, `blk.kc` even and the CPU
/// running AVX512_BF16.
#[allow(clippy::too_many_arguments)]
unsafe fn packed_serial_bf16(
    tile: Bf16TileFn,
    mr: usize,
    nr: usize,
    p: &Problem,
    blk: blocking::Blocking,
    abuf: &mut [f32],
    bbuf: &mut [f32],
) {
    debug_assert!(blk.kc.is_multiple_of(2), "kc = {} must be even for depth pairs", blk.kc);
    let (abuf, bbuf) = (as_u16(abuf), as_u16(bbuf));
    let c = p.c.get();
    for jc in (0..p.n).step_by(blk.nc) {
        let nb = blk.nc.min(p.n - jc);
        for pc in (0..p.k).step_by(blk.kc) {
            let kb = blk.kc.min(p.k - pc);
            let kp = kb.div_ceil(2);
            let beta = if pc == 0 { p.beta } else { 1.0 };
            // SAFETY: the block is inside B, and bbuf holds nb rounded up
            // to NR times 2·kp values.
            unsafe { pack::pack_bf16_pairs(p.b.at(pc, jc).t(), nb, kb, nr, bbuf) };
            for ic in (0..p.m).step_by(blk.mc) {
                let mb = blk.mc.min(p.m - ic);
                // SAFETY: the block is inside A, and abuf holds mb rounded
                // up to MR times 2·kp values.
                unsafe { pack::pack_bf16_pairs(p.a.at(ic, pc), mb, kb, mr, abuf) };
                for jr in (0..nb).step_by(nr) {
                    for ir in (0..mb).step_by(mr) {
                        let (i, j) = ((ic + ir) as isize, (jc + jr) as isize);
                        // SAFETY: the micro-panels are inside the packed
                        // buffers, and the clipped tile is inside C.
                        unsafe {
                            tile(
                                kp,
                                p.alpha,
                                abuf.as_ptr().add(ir * 2 * kp),
                                bbuf.as_ptr().add(jr * 2 * kp),
                                beta,
                                c.offset(i * p.rs_c + j * p.cs_c),
                                p.rs_c,
                                p.cs_c,
                                mr.min(mb - ir),
                                nr.min(nb - jr),
                            )
                        };
                    }
                }
            }
        }
    }
}

