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
use std::sync::atomic::{AtomicBool, Ordering};

type ForwardFn = unsafe fn(*const f32, *mut f32, usize);
type AlphaFn = unsafe fn(*const f32, *mut f32, usize, f32);
type BackwardFn = unsafe fn(*const f32, *const f32, *mut f32, usize);

/// The sparse normalizer family's entry points at one dispatch level.
pub(crate) struct EntmaxKernels {
    sparsemax: ForwardFn,
    entmax15: ForwardFn,
    alpha: AlphaFn,
    sparsemax_backward: BackwardFn,
    entmax15_backward: BackwardFn,
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
            sparsemax: f32_sparsemax_scalar,
            entmax15: f32_entmax15_scalar,
            alpha: f32_alpha_entmax_scalar,
            sparsemax_backward: f32_sparsemax_backward_scalar,
            entmax15_backward: f32_entmax15_backward_scalar,
        }
    };
    (avx2) => {
        EntmaxKernels {
            sparsemax: f32_sparsemax_avx2,
            entmax15: f32_entmax15_avx2,
            alpha: f32_alpha_entmax_avx2,
            sparsemax_backward: f32_sparsemax_backward_avx2,
            entmax15_backward: f32_entmax15_backward_avx2,
        }
    };
    (avx512) => {
        EntmaxKernels {
            sparsemax: f32_sparsemax_avx512,
            entmax15: f32_entmax15_avx512,
            alpha: f32_alpha_entmax_avx512,
            sparsemax_backward: f32_sparsemax_backward_avx512,
            entmax15_backward: f32_entmax15_backward_avx512,
        }
    };
    (neon) => {
        EntmaxKernels {
            sparsemax: f32_sparsemax_neon,
            entmax15: f32_entmax15_neon,
            alpha: f32_alpha_entmax_neon,
            sparsemax_backward: f32_sparsemax_backward_neon,
            entmax15_backward: f32_entmax15_backward_neon,
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

/// Computes one forward row from f32 input `x` into `y`.
///
/// # Safety
///
/// `x[0 .. n]` readable, `y[0 .. n]` writable, equal or disjoint; `alpha`
/// finite and ≥ 1 for [`Normalizer::Alpha`].
unsafe fn forward_row(k: &crate::kernels_table::Kernels, which: Normalizer, alpha: f32, x: *const f32, y: *mut f32, n: usize) {
    let t = &k.entmax;
    // SAFETY: forwarded from the caller.
    unsafe {
        match which {
            Normalizer::Sparsemax => (t.sparsemax)(x, y, n),
            Normalizer::Entmax15 => (t.entmax15)(x, y, n),
            Normalizer::Alpha if alpha == 1.0 => (k.softmax.softmax)(x, y, n, 1.0),
            Normalizer::Alpha if alpha == 1.5 => (t.entmax15)(x, y, n),
            Normalizer::Alpha if alpha == 2.0 => (t.sparsemax)(x, y, n),
            Normalizer::Alpha => (t.alpha)(x, y, n, alpha),
        }
    }
}

/// Applies a normalizer to every row of `x` (elements of `dtype`).
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
    parallel_for(shape.rows, rows_per_chunk(shape.n), threads, |rows| {
        let alpha = AlphaArg { ptr: alpha_ptr.get(), per_row };
        let mut buffer = Vec::new();
        if dtype != Dtype::F32 {
            if buffer.try_reserve_exact(shape.n).is_err() {
                out_of_memory.store(true, Ordering::Relaxed);
                return;
            }
            buffer.resize(shape.n, 0.0f32);
        }
        for r in rows {
            // SAFETY: row r lies inside both buffers by the caller's contract,
            // each row is handled by exactly one thread, and α was checked.
            unsafe {
                let a = if which == Normalizer::Alpha { alpha.get(r) } else { 0.0 };
                let src = x.get().add(r * shape.x_stride * elem);
                let dst = y.get().add(r * y_stride);
                if dtype == Dtype::F32 {
                    forward_row(k, which, a, src.cast(), dst, shape.n);
                } else {
                    widen_row(dtype, src, &mut buffer);
                    forward_row(k, which, a, buffer.as_ptr(), dst, shape.n);
                }
            }
        }
    });
    if out_of_memory.load(Ordering::Relaxed) {
        return Err(Error::new(Status::AllocationFailed, format!("n = {} f32 row buffer does not fit in memory", shape.n)));
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
                        let da = alpha_backward_row(pr, dyr, dxr, b.n, alpha.get(r));
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

/// φ(t) = (e^t − 1 − t)/t², with φ(0) = 1/2, accurate for small |t|.
fn phi(t: f64) -> f64 {
    if t.abs() < 1e-3 {
        0.5 + t * (1.0 / 6.0 + t / 24.0)
    } else {
        (t.exp_m1() - t) / (t * t)
    }
}

/// Computes the α-entmax Jacobian-vector product of one row into `dx` and
/// returns dL/dα = Σ dy_i·∂p_i/∂α.
///
/// With a = α − 1, ℓ = ln p, g = p^(1−a) and G = Σ g, the input gradient is
/// dx = g·dy − (Σ g·dy / G)·g. Differentiating p_i = [1 + a·(x_i − c)]^(1/a)
/// with the normalizer c held to Σ p = 1 gives
/// ∂p_i/∂α = p_i·(R − r_i + a·(r_i·S − ℓ_i·R)) / G, with S = Σ p·ℓ,
/// r = ℓ²·φ(−a·ℓ) and R = Σ p·r. This form has no 1/a² cancellation, so it
/// holds down to α = 1, where it becomes p_i·(Σ p·ℓ² − ℓ_i²)/2.
///
/// NOTE: this runs in scalar f64 on every dispatch level. f32 lanes would
/// overflow g = p^(2−α) for α > 2 and small p, and the α-gradient needs
/// the extra range; the row is read twice.
///
/// # Safety
///
/// `p[0 .. n]` and `dy[0 .. n]` readable, `dx[0 .. n]` writable, `dx` equal
/// to `dy` or `p` or disjoint from both.
unsafe fn alpha_backward_row(p: *const f32, dy: *const f32, dx: *mut f32, n: usize, alpha: f32) -> f32 {
    let a = alpha as f64 - 1.0;
    // Per-entry terms of an entry with p > 0: (ℓ, g, r).
    let terms = |pi: f64| {
        let l = pi.ln();
        let t = -a * l;
        (l, pi * (1.0 + t.exp_m1()), l * l * phi(t))
    };
    let (mut s, mut r_sum, mut g_sum, mut gdy) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let mut nan = false;
    // SAFETY: every access is inside the rows the caller provides; entry i
    // of p and dy is read before dx[i] is written.
    unsafe {
        for i in 0..n {
            let pi = *p.add(i) as f64;
            nan |= pi.is_nan();
            if pi > 0.0 {
                let (l, g, r) = terms(pi);
                s += pi * l;
                r_sum += pi * r;
                g_sum += g;
                gdy += g * *dy.add(i) as f64;
            }
        }
        if nan {
            for i in 0..n {
                *dx.add(i) = f32::NAN;
            }
            return f32::NAN;
        }
        let mean = if g_sum > 0.0 { gdy / g_sum } else { 0.0 };
        let mut d_alpha = 0.0f64;
        for i in 0..n {
            let pi = *p.add(i) as f64;
            let dyi = *dy.add(i) as f64;
            if pi > 0.0 {
                let (l, g, r) = terms(pi);
                d_alpha += dyi * pi * (r_sum - r + a * (r * s - l * r_sum));
                *dx.add(i) = (g * (dyi - mean)) as f32;
            } else {
                *dx.add(i) = 0.0;
            }
        }
        if g_sum > 0.0 {
            (d_alpha / g_sum) as f32
        } else {
            0.0
        }
    }
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
/// [`alpha_entmax`].
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
