//! Sparsemax, entmax-1.5 and α-entmax, forward and backward: kernel table,
//! drivers and safe API.
//!
//! Shapes are `rows × n` in row-major order with row strides in elements.
//! α may be one value for the call or one per row. α = 1 exactly runs the
//! softmax kernels, α = 1.5 and α = 2 run the exact entmax-1.5 and sparsemax
//! kernels, and any other α > 1 the iterative α-entmax kernel.
//!
//! Non-finite policy of the forward passes (see `mlak_kernels::entmax`): a
//! NaN or +inf anywhere in a row makes the output row NaN; -inf entries get
//! 0; a row that is all -inf gives all zeros; n = 1 gives [1].

use crate::dispatch::kernels;
use crate::dtype::{widen_row, Dtype, Element};
use crate::error::{Error, Result, Status};
use crate::softmax::{check_rows, rows_per_chunk, RowsArg};
use crate::threads::{num_threads, parallel_for, SharedPtr};
use mlak_kernels::entmax::{Rows, GROUP_MAX_N, GROUP_ROWS};
use mlak_kernels::simd::MAX_LANES;
use std::sync::atomic::{AtomicBool, Ordering};

type ForwardFn = unsafe fn(Rows);
type AlphaFn = unsafe fn(Rows, f32);
type BackwardFn = unsafe fn(*const f32, *const f32, *mut f32, usize);
type AlphaBackwardFn = unsafe fn(*const f32, *const f32, *mut f32, usize, f32) -> f32;

/// The sparse normalizer family's entry points at one dispatch level.
pub(crate) struct EntmaxKernels {
    sparsemax: ForwardFn,
    entmax15: ForwardFn,
    alpha: AlphaFn,
    sparsemax_backward: BackwardFn,
    entmax15_backward: BackwardFn,
    alpha_backward: AlphaBackwardFn,
}

macro_rules! entmax_table {
    ($module:ident, $isa:ident) => {{
        use mlak_kernels::entmax::$module::*;
        paste_table!($isa)
    }};
}

macro_rules! paste_table {
    (scalar) => {
        EntmaxKernels {
            sparsemax: f32_sparsemax_rows_scalar,
            entmax15: f32_entmax15_rows_scalar,
            alpha: f32_alpha_entmax_rows_scalar,
            sparsemax_backward: f32_sparsemax_backward_scalar,
            entmax15_backward: f32_entmax15_backward_scalar,
            alpha_backward: f32_alpha_entmax_backward_scalar,
        }
    };
    (avx2) => {
        EntmaxKernels {
            sparsemax: f32_sparsemax_rows_avx2,
            entmax15: f32_entmax15_rows_avx2,
            alpha: f32_alpha_entmax_rows_avx2,
            sparsemax_backward: f32_sparsemax_backward_avx2,
            entmax15_backward: f32_entmax15_backward_avx2,
            alpha_backward: f32_alpha_entmax_backward_avx2,
        }
    };
    (avx512) => {
        EntmaxKernels {
            sparsemax: f32_sparsemax_rows_avx512,
            entmax15: f32_entmax15_rows_avx512,
            alpha: f32_alpha_entmax_rows_avx512,
            sparsemax_backward: f32_sparsemax_backward_avx512,
            entmax15_backward: f32_entmax15_backward_avx512,
            alpha_backward: f32_alpha_entmax_backward_avx512,
        }
    };
    (neon) => {
        EntmaxKernels {
            sparsemax: f32_sparsemax_rows_neon,
            entmax15: f32_entmax15_rows_neon,
            alpha: f32_alpha_entmax_rows_neon,
            sparsemax_backward: f32_sparsemax_backward_neon,
            entmax15_backward: f32_entmax15_backward_neon,
            alpha_backward: f32_alpha_entmax_backward_neon,
        }
    };
}

impl EntmaxKernels {
    pub(crate) const SCALAR: Self = entmax_table!(scalar, scalar);
    #[cfg(target_arch = "x86_64")]
    pub(crate) const AVX2: Self = entmax_table!(avx2, avx2);
    #[cfg(target_arch = "x86_64")]
    pub(crate) const AVX512: Self = entmax_table!(avx512, avx512);
    #[cfg(target_arch = "aarch64")]
    pub(crate) const NEON: Self = entmax_table!(neon, neon);
}

/// The normalizer that a forward or backward call computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Normalizer {
    Sparsemax,
    Entmax15,
    /// α-entmax with α from an [`AlphaArg`].
    Alpha,
}

/// α values: one for every row (`per_row` false) or one per row.
#[derive(Clone, Copy)]
pub(crate) struct AlphaArg {
    pub ptr: *const f32,
    pub per_row: bool,
}

impl AlphaArg {
    /// α for sparsemax and entmax-1.5, which ignore it.
    const UNUSED: AlphaArg = AlphaArg { ptr: std::ptr::null(), per_row: false };

    /// Returns α of row `r`.
    ///
    /// # Safety
    ///
    /// `ptr` addresses 1 value, or `rows > r` values when `per_row`.
    unsafe fn get(self, r: usize) -> f32 {
        // SAFETY: forwarded from the caller.
        unsafe { *self.ptr.add(if self.per_row { r } else { 0 }) }
    }
}

/// Checks α values: each must be finite and ≥ 1.
pub(crate) fn check_alpha(alpha: &[f32]) -> Result<()> {
    for (i, &a) in alpha.iter().enumerate() {
        if !(a >= 1.0 && a.is_finite()) {
            return Err(Error::invalid(format!(
                "alpha[{i}] = {a} is invalid; alpha must be finite and >= 1 (1 is softmax, 2 is sparsemax)"
            )));
        }
    }
    Ok(())
}

/// Checks the length of an α slice: 1 (one α for the call) or `rows`.
pub(crate) fn check_alpha_len(len: usize, rows: usize) -> Result<bool> {
    match len {
        1 => Ok(false),
        l if l == rows => Ok(true),
        l => Err(Error::invalid(format!("alpha has {l} values; it must have 1 (one for the call) or rows = {rows}"))),
    }
}

/// Computes the forward pass of a block of f32 rows that share one α.
///
/// # Safety
///
/// `block` satisfies the contract of the kernels' `exact_rows`; `alpha`
/// is finite and ≥ 1 for [`Normalizer::Alpha`].
unsafe fn forward_block(k: &crate::kernels_table::Kernels, which: Normalizer, alpha: f32, block: Rows) {
    let t = &k.entmax;
    // SAFETY: forwarded from the caller.
    unsafe {
        match which {
            Normalizer::Sparsemax => (t.sparsemax)(block),
            Normalizer::Entmax15 => (t.entmax15)(block),
            Normalizer::Alpha if alpha == 1.0 => {
                for r in 0..block.rows {
                    let (x, y) = (block.x.add(r * block.x_stride), block.y.add(r * block.y_stride));
                    (k.softmax.softmax)(x, y, block.n, 1.0);
                }
            }
            Normalizer::Alpha if alpha == 1.5 => (t.entmax15)(block),
            Normalizer::Alpha if alpha == 2.0 => (t.sparsemax)(block),
            Normalizer::Alpha => (t.alpha)(block, alpha),
        }
    }
}

/// Rows widened at a time from f16 or bf16: a whole group where the
/// kernels run rows in groups, else one. General α puts one row in each
/// lane, so its groups have up to [`MAX_LANES`] rows.
fn widen_batch(n: usize) -> usize {
    if n <= GROUP_MAX_N {
        GROUP_ROWS.max(MAX_LANES)
    } else {
        1
    }
}

/// Applies a normalizer to every row of `x` (elements of `dtype`).
///
/// Consecutive rows with the same α go to the kernels as one block, so
/// that short rows run in groups. f32 rows are read in place, and f16 or
/// bf16 rows are widened [`widen_batch`] rows at a time into a buffer.
///
/// # Safety
///
/// `x` addresses the rows of `shape` as aligned `dtype` elements and `y`
/// the same rows of f32 at `y_stride`. For f32 input, `y` equals `x` with
/// the same stride or does not overlap it; otherwise they do not overlap.
/// `alpha` is valid for `shape.rows` rows and checked with [`check_alpha`]
/// when `which` is [`Normalizer::Alpha`].
pub(crate) unsafe fn forward_rows(
    which: Normalizer,
    dtype: Dtype,
    x: *const u8,
    shape: RowsArg,
    y: *mut f32,
    y_stride: usize,
    alpha: AlphaArg,
) -> Result<()> {
    let k = kernels()?;
    let threads = num_threads()?;
    let (x, y) = (SharedPtr(x as *mut u8), SharedPtr(y));
    let alpha_ptr = SharedPtr(alpha.ptr as *mut f32);
    let per_row = alpha.per_row;
    let out_of_memory = AtomicBool::new(false);
    let elem = dtype.size();
    let n = shape.n;
    let batch = if dtype == Dtype::F32 { usize::MAX } else { widen_batch(n) };
    parallel_for(shape.rows, rows_per_chunk(n), threads, |rows| {
        let alpha = AlphaArg { ptr: alpha_ptr.get(), per_row };
        let mut buffer = Vec::new();
        if dtype != Dtype::F32 {
            let len = batch * n;
            if buffer.try_reserve_exact(len).is_err() {
                out_of_memory.store(true, Ordering::Relaxed);
                return;
            }
            buffer.resize(len, 0.0f32);
        }
        let mut r = rows.start;
        while r < rows.end {
            // SAFETY: rows r .. end lie inside both buffers by the caller's
            // contract, each row is handled by exactly one thread, α was
            // checked, and the buffer has room for `batch` rows of n.
            unsafe {
                let a = if which == Normalizer::Alpha { alpha.get(r) } else { 0.0 };
                let mut count = 1;
                while r + count < rows.end && count < batch && (which != Normalizer::Alpha || alpha.get(r + count) == a) {
                    count += 1;
                }
                let src = x.get().add(r * shape.x_stride * elem);
                let dst = y.get().add(r * y_stride);
                let block = if dtype == Dtype::F32 {
                    Rows { x: src.cast(), x_stride: shape.x_stride, y: dst, y_stride, rows: count, n }
                } else {
                    for i in 0..count {
                        widen_row(dtype, src.add(i * shape.x_stride * elem), &mut buffer[i * n..(i + 1) * n]);
                    }
                    Rows { x: buffer.as_ptr(), x_stride: n, y: dst, y_stride, rows: count, n }
                };
                forward_block(k, which, a, block);
                r += count;
            }
        }
    });
    if out_of_memory.load(Ordering::Relaxed) {
        return Err(Error::new(Status::AllocationFailed, format!("{batch} f32 row buffers of n = {n} do not fit in memory")));
    }
    Ok(())
}

/// Strided rows of the backward pass: p and dy in, dx out.
#[derive(Clone, Copy)]
pub(crate) struct BackwardArgs {
    pub rows: usize,
    pub n: usize,
    pub p: *const f32,
    pub p_stride: usize,
    pub dy: *const f32,
    pub dy_stride: usize,
    pub dx: *mut f32,
    pub dx_stride: usize,
}

/// Computes the Jacobian-vector product of a normalizer for every row, and
/// for α-entmax the gradient with respect to α of each row into `d_alpha`
/// when it is not null.
///
/// # Safety
///
/// The pointers in `b` address their strided rows; `dx` equals `dy` or `p`
/// with the same stride or overlaps neither. `alpha` as for
/// [`forward_rows`]; `d_alpha` is null or addresses `rows` writable values
/// that overlap nothing else.
pub(crate) unsafe fn backward_rows(which: Normalizer, b: BackwardArgs, alpha: AlphaArg, d_alpha: *mut f32) -> Result<()> {
    let k = kernels()?;
    let threads = num_threads()?;
    let (p, dy, dx) = (SharedPtr(b.p as *mut f32), SharedPtr(b.dy as *mut f32), SharedPtr(b.dx));
    let (alpha_ptr, d_alpha) = (SharedPtr(alpha.ptr as *mut f32), SharedPtr(d_alpha));
    let per_row = alpha.per_row;
    parallel_for(b.rows, rows_per_chunk(b.n), threads, |rows| {
        let alpha = AlphaArg { ptr: alpha_ptr.get(), per_row };
        for r in rows {
            // SAFETY: row r lies inside every buffer by the caller's contract
            // and each row is handled by exactly one thread.
            unsafe {
                let pr = p.get().add(r * b.p_stride);
                let dyr = dy.get().add(r * b.dy_stride);
                let dxr = dx.get().add(r * b.dx_stride);
                match which {
                    Normalizer::Sparsemax => (k.entmax.sparsemax_backward)(pr, dyr, dxr, b.n),
                    Normalizer::Entmax15 => (k.entmax.entmax15_backward)(pr, dyr, dxr, b.n),
                    Normalizer::Alpha => {
                        let da = (k.entmax.alpha_backward)(pr, dyr, dxr, b.n, alpha.get(r));
                        if !d_alpha.get().is_null() {
                            d_alpha.get().add(r).write(da);
                        }
                    }
                }
            }
        }
    });
    Ok(())
}

/// Validates a safe-API forward call and runs it.
#[allow(clippy::too_many_arguments)]
fn forward_slices<T: Element>(
    which: Normalizer,
    x: &[T],
    x_stride: usize,
    y: &mut [f32],
    y_stride: usize,
    rows: usize,
    n: usize,
    alpha: &[f32],
) -> Result<()> {
    check_rows("x", x.len(), rows, n, x_stride)?;
    check_rows("y", y.len(), rows, n, y_stride)?;
    let alpha_arg = if which == Normalizer::Alpha {
        let per_row = check_alpha_len(alpha.len(), rows)?;
        check_alpha(alpha)?;
        AlphaArg { ptr: alpha.as_ptr(), per_row }
    } else {
        AlphaArg::UNUSED
    };
    let shape = RowsArg { rows, n, x_stride };
    // SAFETY: both slices cover their strided rows, a shared and a mutable
    // slice never overlap, and α was checked.
    unsafe { forward_rows(which, T::DTYPE, x.as_ptr().cast(), shape, y.as_mut_ptr(), y_stride, alpha_arg) }
}

/// Computes `y = sparsemax(x)` over each of `rows` rows of `n` elements.
/// Row `r` of `x` starts at `r * x_stride`, and likewise for `y`. `x` may
/// be f32, `half::f16` or `half::bf16`; the arithmetic is f32.
///
/// Errors: a stride below `n` or a slice too short for its rows.
pub fn sparsemax<T: Element>(x: &[T], x_stride: usize, y: &mut [f32], y_stride: usize, rows: usize, n: usize) -> Result<()> {
    forward_slices(Normalizer::Sparsemax, x, x_stride, y, y_stride, rows, n, &[])
}

/// Computes `y = entmax15(x)` row-wise; arguments as for [`sparsemax`].
pub fn entmax15<T: Element>(x: &[T], x_stride: usize, y: &mut [f32], y_stride: usize, rows: usize, n: usize) -> Result<()> {
    forward_slices(Normalizer::Entmax15, x, x_stride, y, y_stride, rows, n, &[])
}

/// Computes `y = α-entmax(x)` row-wise; arguments as for [`sparsemax`].
/// `alpha` holds one α for every row or one per row; each must be finite
/// and ≥ 1.
///
/// Errors: as for [`sparsemax`], plus an `alpha` of the wrong length or
/// with a value below 1, NaN or infinite.
#[allow(clippy::too_many_arguments)]
pub fn alpha_entmax<T: Element>(
    x: &[T],
    x_stride: usize,
    y: &mut [f32],
    y_stride: usize,
    rows: usize,
    n: usize,
    alpha: &[f32],
) -> Result<()> {
    forward_slices(Normalizer::Alpha, x, x_stride, y, y_stride, rows, n, alpha)
}

/// Row layout of the safe backward API: `rows × n`, and one row stride
/// shared by `p`, `dy` and `dx`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackwardShape {
    pub rows: usize,
    pub n: usize,
    pub stride: usize,
}

fn backward_slices(
    which: Normalizer,
    p: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    shape: BackwardShape,
    alpha: AlphaArg,
    d_alpha: *mut f32,
) -> Result<()> {
    let BackwardShape { rows, n, stride } = shape;
    check_rows("p", p.len(), rows, n, stride)?;
    check_rows("dy", dy.len(), rows, n, stride)?;
    check_rows("dx", dx.len(), rows, n, stride)?;
    let args = BackwardArgs {
        rows,
        n,
        p: p.as_ptr(),
        p_stride: stride,
        dy: dy.as_ptr(),
        dy_stride: stride,
        dx: dx.as_mut_ptr(),
        dx_stride: stride,
    };
    // SAFETY: the slices cover their rows and the mutable one overlaps none.
    unsafe { backward_rows(which, args, alpha, d_alpha) }
}

/// Computes the sparsemax Jacobian-vector product `dx = g·dy − (Σ g·dy /
/// Σ g)·g` with g = 1[p > 0], given the forward output `p` and the output
/// gradient `dy`.
pub fn sparsemax_backward(p: &[f32], dy: &[f32], dx: &mut [f32], shape: BackwardShape) -> Result<()> {
    backward_slices(Normalizer::Sparsemax, p, dy, dx, shape, AlphaArg::UNUSED, std::ptr::null_mut())
}

/// Computes the entmax-1.5 Jacobian-vector product, as
/// [`sparsemax_backward`] with g = √p.
pub fn entmax15_backward(p: &[f32], dy: &[f32], dx: &mut [f32], shape: BackwardShape) -> Result<()> {
    backward_slices(Normalizer::Entmax15, p, dy, dx, shape, AlphaArg::UNUSED, std::ptr::null_mut())
}

/// Computes the α-entmax Jacobian-vector product, as [`sparsemax_backward`]
/// with g = p^(2−α), and, when `d_alpha` is given, the gradient of the loss
/// with respect to each row's α into `d_alpha[0 .. rows]`. `alpha` as for
/// [`alpha_entmax`]. The arithmetic is f32 (see
/// `mlak_kernels::entmax::alpha_backward_row`): for α > 2, dx of an entry
/// whose p^(2−α) exceeds the f32 range is finite or ±inf but not accurate.
pub fn alpha_entmax_backward(
    p: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    shape: BackwardShape,
    alpha: &[f32],
    d_alpha: Option<&mut [f32]>,
) -> Result<()> {
    let per_row = check_alpha_len(alpha.len(), shape.rows)?;
    check_alpha(alpha)?;
    let d_alpha = match d_alpha {
        Some(d) => {
            crate::validate::slice_len("d_alpha", d.len(), shape.rows)?;
            d.as_mut_ptr()
        }
        None => std::ptr::null_mut(),
    };
    let alpha = AlphaArg { ptr: alpha.as_ptr(), per_row };
    backward_slices(Normalizer::Alpha, p, dy, dx, shape, alpha, d_alpha)
}
