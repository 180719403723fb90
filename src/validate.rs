//! Argument checks shared by the C ABI and the safe API. Every check
//! returns an error whose message names the argument, its value and the
//! rule, and runs before any output is written.

use crate::error::{Error, Result, Status};

/// Converts a C dimension to `usize`, rejecting negative values.
pub(crate) fn dim(name: &str, value: i64) -> Result<usize> {
    usize::try_from(value)
        .map_err(|_| Error::invalid(format!("{name} = {value} is negative; dimensions must be >= 0")))
}

/// Converts a C row stride to `usize`, requiring `stride >= n`.
pub(crate) fn row_stride(name: &str, value: i64, n: usize) -> Result<usize> {
    let s = usize::try_from(value)
        .map_err(|_| Error::invalid(format!("{name} = {value} is negative; it must be >= n = {n}")))?;
    check_row_stride(name, s, n)?;
    Ok(s)
}

/// Requires `stride >= n`, so that rows do not overlap.
pub(crate) fn check_row_stride(name: &str, stride: usize, n: usize) -> Result<()> {
    if stride < n {
        return Err(Error::invalid(format!("{name} = {stride} is smaller than the row length n = {n}")));
    }
    Ok(())
}

/// Returns the number of elements that `rows` rows of `n` elements spaced
/// `stride` apart span: `(rows - 1) * stride + n`, or 0 when empty. Also
/// checks that the byte size fits in `isize`.
pub(crate) fn span(name: &str, rows: usize, n: usize, stride: usize, elem_bytes: usize) -> Result<usize> {
    if rows == 0 || n == 0 {
        return Ok(0);
    }
    let elems = (rows - 1).checked_mul(stride).and_then(|v| v.checked_add(n));
    match elems {
        Some(e) if e.checked_mul(elem_bytes).is_some_and(|b| b <= isize::MAX as usize) => Ok(e),
        _ => Err(Error::invalid(format!(
            "{name}: rows = {rows}, n = {n}, stride = {stride} span more than isize::MAX bytes"
        ))),
    }
}

/// Checks a C pointer that must address `elems` elements of type `T`: it
/// may be NULL only when `elems` is 0, and must be aligned for `T`.
pub(crate) fn pointer<T>(name: &str, p: *const T, elems: usize) -> Result<()> {
    if elems == 0 {
        return Ok(());
    }
    if p.is_null() {
        return Err(Error::new(Status::NullPointer, format!("{name} is NULL but must address {elems} elements")));
    }
    let align = std::mem::align_of::<T>();
    if !(p as usize).is_multiple_of(align) {
        return Err(Error::invalid(format!("{name} = {p:p} is not aligned to {align} bytes")));
    }
    Ok(())
}

/// Checks that a slice argument holds at least `elems` elements.
pub(crate) fn slice_len(name: &str, len: usize, elems: usize) -> Result<()> {
    if len < elems {
        return Err(Error::invalid(format!("{name} has {len} elements but the shape needs {elems}")));
    }
    Ok(())
}

/// Rejects an output byte range that overlaps an input byte range, except
/// that the two may start at the same address when `exact_alias_ok`
/// (in-place use with equal strides).
pub(crate) fn no_overlap(
    out_name: &str,
    out: (*const u8, usize),
    in_name: &str,
    input: (*const u8, usize),
    exact_alias_ok: bool,
) -> Result<()> {
    let ((o0, out_bytes), (i0, in_bytes)) = ((out.0 as usize, out.1), (input.0 as usize, input.1));
    if out_bytes == 0 || in_bytes == 0 || (o0 == i0 && exact_alias_ok) {
        return Ok(());
    }
    if o0 < i0 + in_bytes && i0 < o0 + out_bytes {
        let rule = if exact_alias_ok {
            "it must either be the same buffer with the same stride, or not overlap"
        } else {
            "they must not overlap"
        };
        return Err(Error::invalid(format!("{out_name} = {:p} overlaps {in_name} = {:p}; {rule}", out.0, input.0)));
    }
    Ok(())
}

/// Requires a temperature that is finite and > 0, and returns 1/T.
pub(crate) fn temperature(value: f32) -> Result<f32> {
    if !(value > 0.0 && value.is_finite()) {
        return Err(Error::invalid(format!("temperature = {value} is invalid; it must be finite and > 0")));
    }
    let inv = 1.0 / value;
    if !inv.is_finite() {
        return Err(Error::invalid(format!("temperature = {value} is too small; 1/temperature overflows f32")));
    }
    Ok(inv)
}
