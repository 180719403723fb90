//! C exports of the softmax family.

use super::guard;
use crate::error::{Error, Result, Status};
use crate::softmax::{self as sm, Confidence, ExitThresholds, RowMap, RowsArg};
use crate::validate;
use std::mem::size_of;

/// Validated C arguments of a row-wise input: shape, stride and pointer.
fn rows_in(name: &str, x: *const f32, stride: i64, rows: i64, n: i64) -> Result<(RowsArg, usize)> {
    let rows = validate::dim("rows", rows)?;
    let n = validate::dim("n", n)?;
    let x_stride = validate::row_stride(&format!("{name}_row_stride"), stride, n)?;
    let elems = validate::span(name, rows, n, x_stride, size_of::<f32>())?;
    validate::pointer(name, x, elems)?;
    Ok((RowsArg { rows, n, x_stride }, elems))
}

fn bytes<T>(p: *const T, elems: usize) -> (*const u8, usize) {
    (p.cast(), elems * size_of::<T>())
}

fn map_export(
    map: RowMap,
    x: *const f32,
    x_row_stride: i64,
    y: *mut f32,
    y_row_stride: i64,
    rows: i64,
    n: i64,
    temperature: f32,
) -> Status {
    guard(|| {
        let (shape, x_elems) = rows_in("x", x, x_row_stride, rows, n)?;
        let y_stride = validate::row_stride("y_row_stride", y_row_stride, shape.n)?;
        let y_elems = validate::span("y", shape.rows, shape.n, y_stride, size_of::<f32>())?;
        validate::pointer("y", y, y_elems)?;
        let in_place = y_stride == shape.x_stride;
        validate::no_overlap("y", bytes(y, y_elems), "x", bytes(x, x_elems), in_place)?;
        let inv_t = validate::temperature(temperature)?;
        // SAFETY: both pointers were checked to address their strided rows,
        // and y either is x with the same stride or does not overlap it.
        unsafe { sm::map_rows(map, x, shape, y, y_stride, inv_t) }
    })
}

/// Computes `y = softmax(x / temperature)` over each of `rows` rows of `n`
/// floats. Row r of x starts at `x + r * x_row_stride` (strides in elements,
/// at least n), likewise for y. `y` may be `x` with the same stride (in
/// place) but must not otherwise overlap it. `temperature` must be finite
/// and > 0; 1 is the plain softmax.
///
/// Non-finite policy: a NaN anywhere in a row makes that output row NaN; a
/// -inf entry gets probability 0; a row that is all -inf gives all zeros; a
/// +inf entry makes the row NaN. The row maximum is subtracted first, so
/// finite magnitudes (1e30 and beyond) never overflow.
///
/// Pointers may be NULL when rows or n is 0. On error nothing is written.
#[no_mangle]
pub extern "C" fn mlak_softmax_f32(
    x: *const f32,
    x_row_stride: i64,
    y: *mut f32,
    y_row_stride: i64,
    rows: i64,
    n: i64,
    temperature: f32,
) -> Status {
    map_export(RowMap::Softmax, x, x_row_stride, y, y_row_stride, rows, n, temperature)
}

/// Computes `y = log_softmax(x / temperature)` row-wise; arguments and
/// policy as for `mlak_softmax_f32`, except that a -inf entry, and every
/// entry of an all -inf row, gives -inf.
#[no_mangle]
pub extern "C" fn mlak_log_softmax_f32(
    x: *const f32,
    x_row_stride: i64,
    y: *mut f32,
    y_row_stride: i64,
    rows: i64,
    n: i64,
    temperature: f32,
) -> Status {
    map_export(RowMap::LogSoftmax, x, x_row_stride, y, y_row_stride, rows, n, temperature)
}

/// Validates the common arguments of the confidence exports and returns the
/// shape, 1/temperature and the input byte range.
fn confidence_args(
    logits: *const f32,
    row_stride: i64,
    rows: i64,
    n: i64,
    temperature: f32,
) -> Result<(RowsArg, f32, (*const u8, usize))> {
    let (shape, elems) = rows_in("logits", logits, row_stride, rows, n)?;
    let inv_t = validate::temperature(temperature)?;
    Ok((shape, inv_t, bytes(logits, elems)))
}

/// Computes the test-time-compute confidence estimators of each of `rows`
/// rows of `n` logits at the given temperature into `out[0 .. rows]`:
/// entropy in nats, max probability, top-1 minus top-2 probability and the
/// population variance of the raw logits. Two passes over each row.
///
/// Non-finite policy: a NaN in a row makes all four outputs NaN; an all
/// -inf or empty row gives entropy 0, max_prob 0, margin 0 and variance 0; a
/// row mixing an infinity with other values has variance +inf.
#[no_mangle]
pub extern "C" fn mlak_confidence_f32(
    logits: *const f32,
    row_stride: i64,
    rows: i64,
    n: i64,
    temperature: f32,
    out: *mut Confidence,
) -> Status {
    guard(|| {
        let (shape, inv_t, input) = confidence_args(logits, row_stride, rows, n, temperature)?;
        validate::pointer("out", out, shape.rows)?;
        validate::no_overlap("out", bytes(out, shape.rows), "logits", input, false)?;
        // SAFETY: logits covers its strided rows and out covers `rows` values.
        unsafe { sm::confidence_rows(logits, shape, inv_t, out) }
    })
}

/// Decides, for each of `rows` rows of logits, whether the model is
/// confident enough to stop: `exit[r]` is true when the row's entropy,
/// max probability and margin all pass `thresholds` (see
/// `mlak_exit_thresholds`). A row with NaN statistics never exits.
/// `stats`, if not NULL, receives the per-row statistics, and `num_exit`,
/// if not NULL, the number of rows that exit.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn mlak_early_exit_f32(
    logits: *const f32,
    row_stride: i64,
    rows: i64,
    n: i64,
    temperature: f32,
    thresholds: *const ExitThresholds,
    exit: *mut bool,
    stats: *mut Confidence,
    num_exit: *mut i64,
) -> Status {
    guard(|| {
        let (shape, inv_t, input) = confidence_args(logits, row_stride, rows, n, temperature)?;
        if thresholds.is_null() {
            return Err(Error::new(Status::NullPointer, "thresholds is NULL"));
        }
        validate::pointer("thresholds", thresholds, 1)?;
        // SAFETY: checked non-NULL and aligned; the caller owns the struct.
        let t = unsafe { thresholds.read() };
        t.validate()?;
        validate::pointer("exit", exit, shape.rows)?;
        validate::no_overlap("exit", bytes(exit, shape.rows), "logits", input, false)?;
        if !stats.is_null() {
            validate::pointer("stats", stats, shape.rows)?;
            validate::no_overlap("stats", bytes(stats, shape.rows), "logits", input, false)?;
            validate::no_overlap("stats", bytes(stats, shape.rows), "exit", bytes(exit, shape.rows), false)?;
        }
        if !num_exit.is_null() {
            validate::pointer("num_exit", num_exit, 1)?;
        }

        let mut local = Vec::new();
        let stats_ptr = if stats.is_null() {
            local.try_reserve_exact(shape.rows).map_err(|_| {
                Error::new(Status::AllocationFailed, format!("rows = {} statistics do not fit in memory", shape.rows))
            })?;
            local.resize(shape.rows, Confidence::default());
            local.as_mut_ptr()
        } else {
            stats
        };
        // SAFETY: logits covers its rows and stats_ptr covers `rows` values.
        unsafe { sm::confidence_rows(logits, shape, inv_t, stats_ptr)? };
        if shape.rows == 0 {
            if !num_exit.is_null() {
                // SAFETY: checked non-NULL and aligned above.
                unsafe { num_exit.write(0) };
            }
            return Ok(());
        }
        // SAFETY: both ranges hold `rows` values, checked above, and do not
        // overlap each other.
        let (stats_slice, exit_slice) = unsafe {
            (std::slice::from_raw_parts(stats_ptr, shape.rows), std::slice::from_raw_parts_mut(exit, shape.rows))
        };
        let count = sm::decide(&t, stats_slice, exit_slice);
        if !num_exit.is_null() {
            // SAFETY: checked non-NULL and aligned above.
            unsafe { num_exit.write(count as i64) };
        }
        Ok(())
    })
}
