//! C exports of the sparse normalizer family: sparsemax, entmax-1.5 and
//! α-entmax, forward and backward.

use super::guard;
use crate::dtype::Dtype;
use crate::entmax::{self as em, AlphaArg, BackwardArgs, Normalizer};
use crate::error::{Error, Result, Status};
use crate::softmax::RowsArg;
use crate::validate;
use std::mem::size_of;

fn bytes<T>(p: *const T, elems: usize) -> (*const u8, usize) {
    (p.cast(), elems * size_of::<T>())
}

/// Converts a C dtype code.
fn dtype_arg(code: u32) -> Result<Dtype> {
    Dtype::from_code(code).ok_or_else(|| {
        Error::invalid(format!("x_dtype = {code} is not a known dtype; use MLAK_DTYPE_F32, MLAK_DTYPE_F16 or MLAK_DTYPE_BF16"))
    })
}

/// Validates the α pointer and values: `alpha_count` must be 1 or `rows`.
fn alpha_arg(alpha: *const f32, alpha_count: i64, rows: usize) -> Result<AlphaArg> {
    let count = validate::dim("alpha_count", alpha_count)?;
    if count != 1 && count != rows {
        return Err(Error::invalid(format!(
            "alpha_count = {count} is invalid; it must be 1 (one alpha for the call) or rows = {rows}"
        )));
    }
    if alpha.is_null() {
        return Err(Error::new(Status::NullPointer, format!("alpha is NULL but must address {count} values")));
    }
    validate::pointer("alpha", alpha, count)?;
    // SAFETY: checked non-NULL and aligned; the caller provides `count` values.
    let values = unsafe { std::slice::from_raw_parts(alpha, count) };
    em::check_alpha(values)?;
    Ok(AlphaArg { ptr: alpha, per_row: count > 1 })
}

/// Validates and runs a forward call on input of any dtype.
#[allow(clippy::too_many_arguments)]
fn forward_export(
    which: Normalizer,
    dtype: Dtype,
    x: *const u8,
    x_row_stride: i64,
    y: *mut f32,
    y_row_stride: i64,
    rows: i64,
    n: i64,
    alpha: Option<(*const f32, i64)>,
) -> Status {
    guard(|| {
        let rows = validate::dim("rows", rows)?;
        let n = validate::dim("n", n)?;
        let x_stride = validate::row_stride("x_row_stride", x_row_stride, n)?;
        let x_elems = validate::span("x", rows, n, x_stride, dtype.size())?;
        match dtype {
            Dtype::F32 => validate::pointer("x", x.cast::<f32>(), x_elems)?,
            Dtype::F16 | Dtype::Bf16 => validate::pointer("x", x.cast::<u16>(), x_elems)?,
        }
        let y_stride = validate::row_stride("y_row_stride", y_row_stride, n)?;
        let y_elems = validate::span("y", rows, n, y_stride, size_of::<f32>())?;
        validate::pointer("y", y, y_elems)?;
        let in_place = dtype == Dtype::F32 && y_stride == x_stride;
        validate::no_overlap("y", bytes(y, y_elems), "x", (x, x_elems * dtype.size()), in_place)?;
        let alpha = match alpha {
            Some((ptr, count)) => {
                let a = alpha_arg(ptr, count, rows)?;
                validate::no_overlap("y", bytes(y, y_elems), "alpha", bytes(ptr, if a.per_row { rows } else { 1 }), false)?;
                a
            }
            None => AlphaArg { ptr: std::ptr::null(), per_row: false },
        };
        // SAFETY: x and y were checked to address their strided rows, y is x
        // with the same stride (f32 only) or disjoint, and α was checked.
        unsafe { em::forward_rows(which, dtype, x, RowsArg { rows, n, x_stride }, y, y_stride, alpha) }
    })
}

/// Computes `y = sparsemax(x)` over each of `rows` rows of `n` floats: the
/// Euclidean projection of each row onto the probability simplex,
/// `y_i = max(x_i − τ, 0)` with τ such that the row sums to 1. The support
/// and τ are exact, so entries outside the support are exactly 0. Row r of x
/// starts at `x + r * x_row_stride` (strides in elements, at least n),
/// likewise for y. `y` may be `x` with the same stride (in place) but must
/// not otherwise overlap it.
///
/// Non-finite policy: a NaN or +inf anywhere in a row makes that output row
/// NaN; a -inf entry gives 0; a row that is all -inf gives all zeros; n = 1
/// gives [1]. The row maximum is subtracted first, so finite magnitudes
/// (1e8 and beyond) give exact results. Entries tied at the support
/// boundary get exactly 0.
///
/// Pointers may be NULL when rows or n is 0. On error nothing is written.
#[no_mangle]
pub extern "C" fn mlak_sparsemax_f32(
    x: *const f32,
    x_row_stride: i64,
    y: *mut f32,
    y_row_stride: i64,
    rows: i64,
    n: i64,
) -> Status {
    forward_export(Normalizer::Sparsemax, Dtype::F32, x.cast(), x_row_stride, y, y_row_stride, rows, n, None)
}

/// Computes `y = entmax15(x)` row-wise: `y_i = max(x_i/2 − τ, 0)²` with τ
/// such that the row sums to 1 (α-entmax with α = 1.5), with exact support
/// and τ. Arguments and non-finite policy as for `mlak_sparsemax_f32`.
#[no_mangle]
pub extern "C" fn mlak_entmax15_f32(
    x: *const f32,
    x_row_stride: i64,
    y: *mut f32,
    y_row_stride: i64,
    rows: i64,
    n: i64,
) -> Status {
    forward_export(Normalizer::Entmax15, Dtype::F32, x.cast(), x_row_stride, y, y_row_stride, rows, n, None)
}

/// Computes `y = alpha_entmax(x)` row-wise:
/// `y_i = max((α − 1)·x_i − τ, 0)^(1/(α − 1))` with τ such that the row sums
/// to 1. `alpha` points to `alpha_count` values: 1 (one α for every row) or
/// `rows` (one per row). Each α must be finite and >= 1: α = 1 is softmax,
/// α = 1.5 entmax-1.5 and α = 2 sparsemax, which run their exact kernels;
/// other α use a bracketed Newton iteration on τ followed by dividing by
/// the sum, so the row sums to 1 within 1e-6. As α → 1 the result tends
/// smoothly to softmax.
///
/// Other arguments and the non-finite policy as for `mlak_sparsemax_f32`;
/// `y` must not overlap `alpha`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn mlak_alpha_entmax_f32(
    x: *const f32,
    x_row_stride: i64,
    y: *mut f32,
    y_row_stride: i64,
    rows: i64,
    n: i64,
    alpha: *const f32,
    alpha_count: i64,
) -> Status {
    forward_export(
        Normalizer::Alpha,
        Dtype::F32,
        x.cast(),
        x_row_stride,
        y,
        y_row_stride,
        rows,
        n,
        Some((alpha, alpha_count)),
    )
}

/// Computes `y = sparsemax(x)` for input of any `mlak_dtype` (`x_dtype`):
/// f16 and bf16 rows are widened exactly to f32 and computed in f32. The
/// output is f32. `x` must be aligned for its dtype and must not overlap
/// `y`, except that f32 input may be `y` with the same stride. Otherwise as
/// `mlak_sparsemax_f32`.
#[no_mangle]
pub extern "C" fn mlak_sparsemax(
    x_dtype: u32,
    x: *const core::ffi::c_void,
    x_row_stride: i64,
    y: *mut f32,
    y_row_stride: i64,
    rows: i64,
    n: i64,
) -> Status {
    match dtype_arg(x_dtype) {
        Ok(d) => forward_export(Normalizer::Sparsemax, d, x.cast(), x_row_stride, y, y_row_stride, rows, n, None),
        Err(e) => guard(|| Err(e)),
    }
}

/// Computes `y = entmax15(x)` for input of any `mlak_dtype`; see
/// `mlak_sparsemax` and `mlak_entmax15_f32`.
#[no_mangle]
pub extern "C" fn mlak_entmax15(
    x_dtype: u32,
    x: *const core::ffi::c_void,
    x_row_stride: i64,
    y: *mut f32,
    y_row_stride: i64,
    rows: i64,
    n: i64,
) -> Status {
    match dtype_arg(x_dtype) {
        Ok(d) => forward_export(Normalizer::Entmax15, d, x.cast(), x_row_stride, y, y_row_stride, rows, n, None),
        Err(e) => guard(|| Err(e)),
    }
}

/// Computes `y = alpha_entmax(x)` for input of any `mlak_dtype`; see
/// `mlak_sparsemax` and `mlak_alpha_entmax_f32`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn mlak_alpha_entmax(
    x_dtype: u32,
    x: *const core::ffi::c_void,
    x_row_stride: i64,
    y: *mut f32,
    y_row_stride: i64,
    rows: i64,
    n: i64,
    alpha: *const f32,
    alpha_count: i64,
) -> Status {
    match dtype_arg(x_dtype) {
        Ok(d) => forward_export(
            Normalizer::Alpha,
            d,
            x.cast(),
            x_row_stride,
            y,
            y_row_stride,
            rows,
            n,
            Some((alpha, alpha_count)),
        ),
        Err(e) => guard(|| Err(e)),
    }
}

/// Validated C arguments of one strided f32 matrix of the backward pass.
fn backward_matrix(name: &str, p: *const f32, stride: i64, rows: usize, n: usize) -> Result<(usize, usize)> {
    let s = validate::row_stride(&format!("{name}_row_stride"), stride, n)?;
    let elems = validate::span(name, rows, n, s, size_of::<f32>())?;
    validate::pointer(name, p, elems)?;
    Ok((s, elems))
}

/// Validates and runs a backward call.
#[allow(clippy::too_many_arguments)]
fn backward_export(
    which: Normalizer,
    p: *const f32,
    p_row_stride: i64,
    dy: *const f32,
    dy_row_stride: i64,
    dx: *mut f32,
    dx_row_stride: i64,
    rows: i64,
    n: i64,
    alpha: Option<(*const f32, i64, *mut f32)>,
) -> Status {
    guard(|| {
        let rows = validate::dim("rows", rows)?;
        let n = validate::dim("n", n)?;
        let (p_stride, p_elems) = backward_matrix("p", p, p_row_stride, rows, n)?;
        let (dy_stride, dy_elems) = backward_matrix("dy", dy, dy_row_stride, rows, n)?;
        let (dx_stride, dx_elems) = backward_matrix("dx", dx, dx_row_stride, rows, n)?;
        let dx_bytes = bytes(dx, dx_elems);
        validate::no_overlap("dx", dx_bytes, "p", bytes(p, p_elems), dx_stride == p_stride)?;
        validate::no_overlap("dx", dx_bytes, "dy", bytes(dy, dy_elems), dx_stride == dy_stride)?;
        let (alpha, d_alpha) = match alpha {
            Some((ptr, count, d_alpha)) => {
                let a = alpha_arg(ptr, count, rows)?;
                let alpha_bytes = bytes(ptr, if a.per_row { rows } else { 1 });
                validate::no_overlap("dx", dx_bytes, "alpha", alpha_bytes, false)?;
                if !d_alpha.is_null() {
                    validate::pointer("d_alpha", d_alpha, rows)?;
                    let d_bytes = bytes(d_alpha, rows);
                    for (name, range) in
                        [("p", bytes(p, p_elems)), ("dy", bytes(dy, dy_elems)), ("dx", dx_bytes), ("alpha", alpha_bytes)]
                    {
                        validate::no_overlap("d_alpha", d_bytes, name, range, false)?;
                    }
                }
                (a, d_alpha)
            }
            None => (AlphaArg { ptr: std::ptr::null(), per_row: false }, std::ptr::null_mut()),
        };
        let args = BackwardArgs { rows, n, p, p_stride, dy, dy_stride, dx, dx_stride };
        // SAFETY: every pointer was checked to address its strided rows, and
        // dx is p or dy with the same stride or disjoint from both. d_alpha
        // is NULL or `rows` values disjoint from the rest. α was checked.
        unsafe { em::backward_rows(which, args, alpha, d_alpha) }
    })
}

/// Computes the sparsemax backward pass (Jacobian-vector product) for each
/// of `rows` rows: given the forward output `p` and the output gradient
/// `dy`, `dx = g·dy − (Σ g·dy / Σ g)·g` with `g = 1[p > 0]`. Each matrix has
/// its own row stride (in elements, at least n). `dx` may be `dy` or `p`
/// with the same stride but must not otherwise overlap them.
///
/// A row whose p has no positive entry gives dx = 0; a NaN in p makes dx
/// NaN at that entry (and, through the sums, in the row's support).
///
/// Pointers may be NULL when rows or n is 0. On error nothing is written.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn mlak_sparsemax_backward_f32(
    p: *const f32,
    p_row_stride: i64,
    dy: *const f32,
    dy_row_stride: i64,
    dx: *mut f32,
    dx_row_stride: i64,
    rows: i64,
    n: i64,
) -> Status {
    backward_export(Normalizer::Sparsemax, p, p_row_stride, dy, dy_row_stride, dx, dx_row_stride, rows, n, None)
}

/// Computes the entmax-1.5 backward pass, as `mlak_sparsemax_backward_f32`
/// with `g = sqrt(p)`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn mlak_entmax15_backward_f32(
    p: *const f32,
    p_row_stride: i64,
    dy: *const f32,
    dy_row_stride: i64,
    dx: *mut f32,
    dx_row_stride: i64,
    rows: i64,
    n: i64,
) -> Status {
    backward_export(Normalizer::Entmax15, p, p_row_stride, dy, dy_row_stride, dx, dx_row_stride, rows, n, None)
}

/// Computes the α-entmax backward pass, as `mlak_sparsemax_backward_f32`
/// with `g = p^(2 − α)`, and, when `d_alpha` is not NULL, the gradient of
/// the loss with respect to α of each row, `d_alpha[r] = Σ_i dy_i·∂p_i/∂α`
/// (sum these over rows for an α shared by all rows). `alpha` and
/// `alpha_count` as for `mlak_alpha_entmax_f32`; they must be the values
/// the forward pass used. Arithmetic is f64 per row, so g does not
/// overflow for α > 2 and small p. `d_alpha` must not overlap the other
/// arguments.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn mlak_alpha_entmax_backward_f32(
    p: *const f32,
    p_row_stride: i64,
    dy: *const f32,
    dy_row_stride: i64,
    dx: *mut f32,
    dx_row_stride: i64,
    rows: i64,
    n: i64,
    alpha: *const f32,
    alpha_count: i64,
    d_alpha: *mut f32,
) -> Status {
    backward_export(
        Normalizer::Alpha,
        p,
        p_row_stride,
        dy,
        dy_row_stride,
        dx,
        dx_row_stride,
        rows,
        n,
        Some((alpha, alpha_count, d_alpha)),
    )
}
