//! Row-wise softmax, log-softmax, confidence estimators and the early-exit
//! decision: kernel table, driver and safe API.
//!
//! Shapes are `rows × n` in row-major order with a row stride in elements.
//! The non-finite policy is the one documented in `mlak_kernels::softmax`:
//! NaN anywhere in a row makes the row's outputs NaN; -inf entries get
//! probability 0; an all -inf (or empty) row gives probabilities 0,
//! log-probabilities -inf and entropy 0; finite magnitudes never overflow.

use crate::dispatch::kernels;
use crate::error::{Error, Result};
use crate::threads::{num_threads, parallel_for, SharedPtr, MIN_ELEMS_PER_THREAD};
use crate::validate;
pub use mlak_kernels::softmax::Confidence;

type RowMapFn = unsafe fn(*const f32, *mut f32, usize, f32);
type RowsMapFn = unsafe fn(*const f32, usize, *mut f32, usize, usize, usize, f32);
type ConfidenceFn = unsafe fn(*const f32, usize, f32) -> Confidence;
type ExpFn = unsafe fn(*const f32, *mut f32, usize);

/// The softmax family's entry points at one dispatch level.
pub(crate) struct SoftmaxKernels {
    pub(crate) softmax: RowMapFn,
    softmax_rows: RowsMapFn,
    log_softmax_rows: RowsMapFn,
    confidence: ConfidenceFn,
    pub(crate) exp: ExpFn,
}

impl SoftmaxKernels {
    pub(crate) const SCALAR: Self = {
        use mlak_kernels::softmax::scalar::*;
        SoftmaxKernels {
            softmax: f32_softmax_scalar,
            softmax_rows: f32_softmax_rows_scalar,
            log_softmax_rows: f32_logsoftmax_rows_scalar,
            confidence: f32_confidence_scalar,
            exp: f32_exp_scalar,
        }
    };
    #[cfg(target_arch = "x86_64")]
    pub(crate) const AVX2: Self = {
        use mlak_kernels::softmax::avx2::*;
        SoftmaxKernels {
            softmax: f32_softmax_avx2,
            softmax_rows: f32_softmax_rows_avx2,
            log_softmax_rows: f32_logsoftmax_rows_avx2,
            confidence: f32_confidence_avx2,
            exp: f32_exp_avx2,
        }
    };
    #[cfg(target_arch = "x86_64")]
    pub(crate) const AVX512: Self = {
        use mlak_kernels::softmax::avx512::*;
        SoftmaxKernels {
            softmax: f32_softmax_avx512,
            softmax_rows: f32_softmax_rows_avx512,
            log_softmax_rows: f32_logsoftmax_rows_avx512,
            confidence: f32_confidence_avx512,
            exp: f32_exp_avx512,
        }
    };
    #[cfg(target_arch = "aarch64")]
    pub(crate) const NEON: Self = {
        use mlak_kernels::softmax::neon::*;
        SoftmaxKernels {
            softmax: f32_softmax_neon,
            softmax_rows: f32_softmax_rows_neon,
            log_softmax_rows: f32_logsoftmax_rows_neon,
            confidence: f32_confidence_neon,
            exp: f32_exp_neon,
        }
    };
}

pub(crate) fn rows_per_chunk(n: usize) -> usize {
    (MIN_ELEMS_PER_THREAD / n.max(1)).max(1)
}

/// Validated `rows × n` input with its stride, as seen by the drivers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowsArg {
    pub rows: usize,
    pub n: usize,
    pub x_stride: usize,
}

/// Which row map a [`map_rows`] call applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RowMap {
    Softmax,
    LogSoftmax,
}

/// Applies softmax or log-softmax to every row.
///
/// # Safety
///
/// `x` addresses the rows of `shape` and `y` the same rows at `y_stride`;
/// `y` equals `x` with the same stride or does not overlap it.
pub(crate) unsafe fn map_rows(
    map: RowMap,
    x: *const f32,
    shape: RowsArg,
    y: *mut f32,
    y_stride: usize,
    inv_t: f32,
) -> Result<()> {
    let k = kernels()?;
    let f = match map {
        RowMap::Softmax => k.softmax.softmax_rows,
        RowMap::LogSoftmax => k.softmax.log_softmax_rows,
    };
    let threads = num_threads()?;
    let (x, y) = (SharedPtr(x as *mut f32), SharedPtr(y));
    parallel_for(shape.rows, rows_per_chunk(shape.n), threads, |rows| {
        let (xr, yr) = (x.get().wrapping_add(rows.start * shape.x_stride), y.get().wrapping_add(rows.start * y_stride));
        // SAFETY: the rows of the range lie inside both buffers by the
        // caller's contract, and each row is handled by exactly one thread.
        unsafe { f(xr, shape.x_stride, yr, y_stride, rows.len(), shape.n, inv_t) };
    });
    Ok(())
}

/// Computes the confidence estimators of every row into `out[0 .. rows]`.
///
/// # Safety
///
/// `x` addresses the rows of `shape`; `out` addresses `shape.rows` writable
/// values.
pub(crate) unsafe fn confidence_rows(x: *const f32, shape: RowsArg, inv_t: f32, out: *mut Confidence) -> Result<()> {
    let k = kernels()?;
    let f = k.softmax.confidence;
    let threads = num_threads()?;
    let (x, out) = (SharedPtr(x as *mut f32), SharedPtr(out));
    parallel_for(shape.rows, rows_per_chunk(shape.n), threads, |rows| {
        for r in rows {
            // SAFETY: row r and out[r] are inside the caller's buffers, and
            // each r is handled by exactly one thread.
            unsafe { out.get().add(r).write(f(x.get().add(r * shape.x_stride), shape.n, inv_t)) };
        }
    });
    Ok(())
}

/// Thresholds of the early-exit decision. A row exits when all three hold:
/// `entropy <= max_entropy`, `max_prob >= min_max_prob` and
/// `margin >= min_margin`. Use +inf, 0 and 0 (or -inf) to disable a test.
/// A row with NaN statistics never exits.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExitThresholds {
    /// Maximum entropy in nats.
    pub max_entropy: f32,
    /// Minimum top-1 probability.
    pub min_max_prob: f32,
    /// Minimum top-1 minus top-2 probability.
    pub min_margin: f32,
}

impl ExitThresholds {
    pub(crate) fn validate(&self) -> Result<()> {
        let named = [
            ("thresholds.max_entropy", self.max_entropy),
            ("thresholds.min_max_prob", self.min_max_prob),
            ("thresholds.min_margin", self.min_margin),
        ];
        for (name, v) in named {
            if v.is_nan() {
                return Err(Error::invalid(format!("{name} = NaN is invalid; use an infinity to disable the test")));
            }
        }
        Ok(())
    }

    /// Returns whether a row with statistics `c` is confident enough to exit.
    pub fn accepts(&self, c: &Confidence) -> bool {
        c.entropy <= self.max_entropy && c.max_prob >= self.min_max_prob && c.margin >= self.min_margin
    }
}

pub(crate) fn check_rows(name: &str, len: usize, rows: usize, n: usize, stride: usize) -> Result<usize> {
    validate::check_row_stride(&format!("{name}_stride"), stride, n)?;
    let elems = validate::span(name, rows, n, stride, 4)?;
    validate::slice_len(name, len, elems)?;
    Ok(elems)
}

fn map_slices(
    map: RowMap,
    x: &[f32],
    x_stride: usize,
    y: &mut [f32],
    y_stride: usize,
    rows: usize,
    n: usize,
    temperature: f32,
) -> Result<()> {
    let inv_t = validate::temperature(temperature)?;
    check_rows("x", x.len(), rows, n, x_stride)?;
    check_rows("y", y.len(), rows, n, y_stride)?;
    let shape = RowsArg { rows, n, x_stride };
    // SAFETY: both slices were checked to cover their strided rows, and a
    // shared and a mutable slice never overlap.
    unsafe { map_rows(map, x.as_ptr(), shape, y.as_mut_ptr(), y_stride, inv_t) }
}

/// Computes `y = softmax(x / temperature)` over each of `rows` rows of `n`
/// elements. Row `r` of `x` starts at `r * x_stride`, and likewise for `y`.
///
/// Errors: a stride below `n`, a slice too short for its rows, or a
/// temperature that is not finite and positive.
#[allow(clippy::too_many_arguments)]
pub fn softmax(
    x: &[f32],
    x_stride: usize,
    y: &mut [f32],
    y_stride: usize,
    rows: usize,
    n: usize,
    temperature: f32,
) -> Result<()> {
    map_slices(RowMap::Softmax, x, x_stride, y, y_stride, rows, n, temperature)
}

/// Computes `y = log_softmax(x / temperature)` row-wise; arguments as for
/// [`softmax`].
#[allow(clippy::too_many_arguments)]
pub fn log_softmax(
    x: &[f32],
    x_stride: usize,
    y: &mut [f32],
    y_stride: usize,
    rows: usize,
    n: usize,
    temperature: f32,
) -> Result<()> {
    map_slices(RowMap::LogSoftmax, x, x_stride, y, y_stride, rows, n, temperature)
}

/// Replaces each row of `xy` with its softmax at the given temperature.
pub fn softmax_in_place(xy: &mut [f32], stride: usize, rows: usize, n: usize, temperature: f32) -> Result<()> {
    let inv_t = validate::temperature(temperature)?;
    check_rows("xy", xy.len(), rows, n, stride)?;
    let p = xy.as_mut_ptr();
    // SAFETY: the slice covers its rows; input and output are the same
    // buffer with the same stride, which the kernels allow.
    unsafe { map_rows(RowMap::Softmax, p, RowsArg { rows, n, x_stride: stride }, p, stride, inv_t) }
}

/// Computes the confidence estimators of each row of `logits` at the given
/// temperature into `out[0 .. rows]`. See [`Confidence`] for the outputs.
pub fn confidence(
    logits: &[f32],
    stride: usize,
    rows: usize,
    n: usize,
    temperature: f32,
    out: &mut [Confidence],
) -> Result<()> {
    let inv_t = validate::temperature(temperature)?;
    check_rows("logits", logits.len(), rows, n, stride)?;
    validate::slice_len("out", out.len(), rows)?;
    // SAFETY: the slices cover `rows` strided rows and `rows` outputs.
    unsafe { confidence_rows(logits.as_ptr(), RowsArg { rows, n, x_stride: stride }, inv_t, out.as_mut_ptr()) }
}

/// Decides for each row whether it is confident enough to stop, writing
/// `exit[r]`, and returns how many rows exit. When `stats` is given, the
/// per-row statistics are written to it too.
#[allow(clippy::too_many_arguments)]
pub fn early_exit(
    logits: &[f32],
    stride: usize,
    rows: usize,
    n: usize,
    temperature: f32,
    thresholds: &ExitThresholds,
    exit: &mut [bool],
    stats: Option<&mut [Confidence]>,
) -> Result<usize> {
    let inv_t = validate::temperature(temperature)?;
    thresholds.validate()?;
    check_rows("logits", logits.len(), rows, n, stride)?;
    validate::slice_len("exit", exit.len(), rows)?;
    if let Some(s) = &stats {
        validate::slice_len("stats", s.len(), rows)?;
    }
    let mut local = Vec::new();
    let stats: &mut [Confidence] = match stats {
        Some(s) => s,
        None => {
            local.try_reserve_exact(rows).map_err(|_| {
                Error::new(crate::Status::AllocationFailed, format!("rows = {rows} statistics do not fit in memory"))
            })?;
            local.resize(rows, Confidence::default());
            &mut local
        }
    };
    // SAFETY: the slices cover `rows` strided rows and `rows` outputs.
    unsafe { confidence_rows(logits.as_ptr(), RowsArg { rows, n, x_stride: stride }, inv_t, stats.as_mut_ptr())? };
    Ok(decide(thresholds, &stats[..rows], &mut exit[..rows]))
}

/// Writes the exit decision of each row and returns the number of exits.
pub(crate) fn decide(thresholds: &ExitThresholds, stats: &[Confidence], exit: &mut [bool]) -> usize {
    let mut count = 0;
    for (e, c) in exit.iter_mut().zip(stats) {
        *e = thresholds.accepts(c);
        count += usize::from(*e);
    }
    count
}

/// Computes `y[i] = e^x[i]` with the kernels' vector exponential: at most
/// `mlak_kernels::simd::EXP_MAX_ULP` ulp from the correctly rounded value for
/// x in [-87.33655, 88.37626], 0 below, +inf above, NaN for NaN.
pub fn exp(x: &[f32], y: &mut [f32]) -> Result<()> {
    if x.len() != y.len() {
        return Err(Error::invalid(format!("x has {} elements but y has {}; they must match", x.len(), y.len())));
    }
    let f = kernels()?.softmax.exp;
    // SAFETY: both slices hold x.len() elements and cannot overlap.
    unsafe { f(x.as_ptr(), y.as_mut_ptr(), x.len()) };
    Ok(())
}
