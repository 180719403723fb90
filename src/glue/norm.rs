//! LayerNorm and RMSNorm drivers and their safe API.

use super::for_each_row;
use crate::dispatch::kernels;
use crate::error::{Error, Result};
use crate::validate;
use mlak_kernels::norm::NormRow;

/// Which normalization a [`norm_rows`] call applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NormKind {
    LayerNorm,
    RmsNorm,
}

/// Validated pointers, strides and shape of a norm call. Null `residual`,
/// `sum`, `gamma` and `beta` mean no residual, no stored sum, scale 1 and
/// shift 0.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NormArgs {
    pub x: *const f32,
    pub x_stride: usize,
    pub residual: *const f32,
    pub residual_stride: usize,
    pub sum: *mut f32,
    pub sum_stride: usize,
    pub gamma: *const f32,
    pub beta: *const f32,
    pub y: *mut f32,
    pub y_stride: usize,
    pub rows: usize,
    pub n: usize,
    pub eps: f32,
}

// SAFETY: `norm_rows` hands each row to exactly one thread, and the only
// shared memory (gamma, beta and the inputs) is read-only.
unsafe impl Sync for NormArgs {}

/// Offsets `p` by `r` rows of `stride`, keeping null as null.
fn row_ptr<T>(p: *const T, r: usize, stride: usize) -> *const T {
    if p.is_null() {
        p
    } else {
        p.wrapping_add(r * stride)
    }
}

/// Normalizes every row.
///
/// # Safety
///
/// Every non-null pointer addresses its strided rows (gamma and beta: `n`
/// values). `y` and `sum` each equal `x` or `residual` with the same stride,
/// or overlap no input; they never overlap each other.
pub(crate) unsafe fn norm_rows(kind: NormKind, a: &NormArgs) -> Result<()> {
    let k = kernels()?;
    let f = match kind {
        NormKind::LayerNorm => k.glue.layernorm,
        NormKind::RmsNorm => k.glue.rmsnorm,
    };
    if a.rows == 0 || a.n == 0 {
        return Ok(());
    }
    for_each_row(a.rows, a.n, |r| {
        let row = NormRow {
            x: row_ptr(a.x, r, a.x_stride),
            residual: row_ptr(a.residual, r, a.residual_stride),
            sum: row_ptr(a.sum, r, a.sum_stride).cast_mut(),
            gamma: a.gamma,
            beta: a.beta,
            y: row_ptr(a.y, r, a.y_stride).cast_mut(),
        };
        // SAFETY: row r of every buffer is inside it by the caller's
        // contract, and each row is handled by exactly one thread.
        unsafe { f(row, a.n, a.eps) };
    })
}

/// Requires `eps` finite and >= 0.
pub(crate) fn check_eps(eps: f32) -> Result<()> {
    if !(eps >= 0.0 && eps.is_finite()) {
        return Err(Error::invalid(format!("eps = {eps} is invalid; it must be finite and >= 0")));
    }
    Ok(())
}

/// Scale, shift and epsilon of a norm call in the safe API.
#[derive(Clone, Copy, Debug)]
pub struct NormParams<'a> {
    /// Per-column scale of `n` values; `None` scales by 1.
    pub gamma: Option<&'a [f32]>,
    /// Per-column shift of `n` values; `None` shifts by 0. RMSNorm takes no
    /// shift and rejects one.
    pub beta: Option<&'a [f32]>,
    /// Added to the variance (or mean square) before the square root.
    pub eps: f32,
}

impl Default for NormParams<'_> {
    /// No scale, no shift and eps = 1e-5.
    fn default() -> Self {
        NormParams { gamma: None, beta: None, eps: 1e-5 }
    }
}

pub(crate) fn check_rows(name: &str, len: usize, rows: usize, n: usize, stride: usize) -> Result<()> {
    validate::check_row_stride(&format!("{name}_stride"), stride, n)?;
    let elems = validate::span(name, rows, n, stride, 4)?;
    validate::slice_len(name, len, elems)
}

/// Validates the slices of a safe norm call and returns its arguments.
#[allow(clippy::too_many_arguments)]
fn slice_args(
    kind: NormKind,
    x: &[f32],
    x_stride: usize,
    residual: Option<(&[f32], usize)>,
    sum: Option<(&mut [f32], usize)>,
    y: &mut [f32],
    y_stride: usize,
    rows: usize,
    n: usize,
    p: &NormParams,
) -> Result<NormArgs> {
    check_eps(p.eps)?;
    check_rows("x", x.len(), rows, n, x_stride)?;
    check_rows("y", y.len(), rows, n, y_stride)?;
    let (residual, residual_stride) = match residual {
        Some((r, s)) => {
            check_rows("residual", r.len(), rows, n, s)?;
            (r.as_ptr(), s)
        }
        None => (std::ptr::null(), 0),
    };
    let (sum, sum_stride) = match sum {
        Some((s, stride)) => {
            check_rows("sum", s.len(), rows, n, stride)?;
            (s.as_mut_ptr(), stride)
        }
        None => (std::ptr::null_mut(), 0),
    };
    if kind == NormKind::RmsNorm && p.beta.is_some() {
        return Err(Error::invalid("beta is set but RMSNorm has no shift; pass None"));
    }
    let affine = |name: &str, v: Option<&[f32]>| -> Result<*const f32> {
        match v {
            Some(v) => validate::slice_len(name, v.len(), n).map(|_| v.as_ptr()),
            None => Ok(std::ptr::null()),
        }
    };
    Ok(NormArgs {
        x: x.as_ptr(),
        x_stride,
        residual,
        residual_stride,
        sum,
        sum_stride,
        gamma: affine("gamma", p.gamma)?,
        beta: affine("beta", p.beta)?,
        y: y.as_mut_ptr(),
        y_stride,
        rows,
        n,
        eps: p.eps,
    })
}

/// Computes `y = (x − mean)/√(var + eps)·gamma + beta` over each of `rows`
/// rows of `n` elements, with the population variance of each row.
///
/// Errors: a stride below `n`, a slice too short for its rows, gamma or
/// beta shorter than `n`, or eps negative or not finite.
pub fn layernorm(
    x: &[f32],
    x_stride: usize,
    y: &mut [f32],
    y_stride: usize,
    rows: usize,
    n: usize,
    params: &NormParams,
) -> Result<()> {
    let a = slice_args(NormKind::LayerNorm, x, x_stride, None, None, y, y_stride, rows, n, params)?;
    // SAFETY: every slice was checked to cover its rows, and the borrows
    // rule out overlap between outputs and inputs.
    unsafe { norm_rows(NormKind::LayerNorm, &a) }
}

/// LayerNorm of `h = x + residual`, writing h to `sum` when given, which is
/// the pre-norm residual stream of a transformer block. Arguments and
/// errors as for [`layernorm`].
#[allow(clippy::too_many_arguments)]
pub fn add_layernorm(
    x: &[f32],
    x_stride: usize,
    residual: &[f32],
    residual_stride: usize,
    sum: Option<(&mut [f32], usize)>,
    y: &mut [f32],
    y_stride: usize,
    rows: usize,
    n: usize,
    params: &NormParams,
) -> Result<()> {
    let r = Some((residual, residual_stride));
    let a = slice_args(NormKind::LayerNorm, x, x_stride, r, sum, y, y_stride, rows, n, params)?;
    // SAFETY: as in `layernorm`.
    unsafe { norm_rows(NormKind::LayerNorm, &a) }
}

/// Computes `y = x/√(mean(x²) + eps)·gamma` over each row. Arguments and
/// errors as for [`layernorm`]; a `beta` is rejected.
pub fn rmsnorm(
    x: &[f32],
    x_stride: usize,
    y: &mut [f32],
    y_stride: usize,
    rows: usize,
    n: usize,
    params: &NormParams,
) -> Result<()> {
    let a = slice_args(NormKind::RmsNorm, x, x_stride, None, None, y, y_stride, rows, n, params)?;
    // SAFETY: as in `layernorm`.
    unsafe { norm_rows(NormKind::RmsNorm, &a) }
}

/// RMSNorm of `h = x + residual`, writing h to `sum` when given. Arguments
/// and errors as for [`rmsnorm`].
#[allow(clippy::too_many_arguments)]
pub fn add_rmsnorm(
    x: &[f32],
    x_stride: usize,
    residual: &[f32],
    residual_stride: usize,
    sum: Option<(&mut [f32], usize)>,
    y: &mut [f32],
    y_stride: usize,
    rows: usize,
    n: usize,
    params: &NormParams,
) -> Result<()> {
    let r = Some((residual, residual_stride));
    let a = slice_args(NormKind::RmsNorm, x, x_stride, r, sum, y, y_stride, rows, n, params)?;
    // SAFETY: as in `layernorm`.
    unsafe { norm_rows(NormKind::RmsNorm, &a) }
}
