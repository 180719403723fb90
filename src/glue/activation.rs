//! Activation, SwiGLU and bias-add drivers and their safe API.

use super::for_each_row;
use super::norm::check_rows;
use crate::dispatch::kernels;
use crate::error::{Error, Result};
use crate::threads::SharedPtr;

/// Element-wise activations with a row-wise driver.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// GELU, erf form: x·Φ(x), with Φ the standard normal CDF (BERT,
    /// PyTorch `gelu`).
    GeluErf = 0,
    /// GELU, tanh approximation: x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))/2
    /// (GPT-2, PyTorch `gelu(approximate="tanh")`).
    GeluTanh = 1,
    /// SiLU (swish): x·sigmoid(x).
    Silu = 2,
}

/// Applies `act` to every row: `y = act(x)`.
///
/// # Safety
///
/// `x` and `y` address their strided rows of `n` elements; `y` is `x` with
/// the same stride or does not overlap it.
pub(crate) unsafe fn activate_rows(
    act: Activation,
    x: *const f32,
    x_stride: usize,
    y: *mut f32,
    y_stride: usize,
    rows: usize,
    n: usize,
) -> Result<()> {
    let k = kernels()?;
    let f = match act {
        Activation::GeluErf => k.glue.gelu_erf,
        Activation::GeluTanh => k.glue.gelu_tanh,
        Activation::Silu => k.glue.silu,
    };
    let (x, y) = (SharedPtr(x.cast_mut()), SharedPtr(y));
    for_each_row(rows, n, |r| {
        // SAFETY: row r is inside both buffers by the caller's contract,
        // and each row is handled by exactly one thread.
        unsafe { f(x.get().add(r * x_stride), y.get().add(r * y_stride), n) };
    })
}

/// Which two-input row map a [`binary_rows`] call applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    /// `y = silu(a)·b`.
    Swiglu,
    /// `y = a + b`, where `b` is one row (stride 0) for the bias add.
    Add,
}

/// Applies `op` to every row: `y[r] = op(a[r], b[r])`. A `b_stride` of 0
/// broadcasts one row of `b`.
///
/// # Safety
///
/// `a`, `b` and `y` address their strided rows of `n` elements; `y` equals
/// `a` or `b` with the same stride, or overlaps neither.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn binary_rows(
    op: BinaryOp,
    a: *const f32,
    a_stride: usize,
    b: *const f32,
    b_stride: usize,
    y: *mut f32,
    y_stride: usize,
    rows: usize,
    n: usize,
) -> Result<()> {
    let k = kernels()?;
    let f = match op {
        BinaryOp::Swiglu => k.glue.swiglu,
        BinaryOp::Add => k.glue.bias_add,
    };
    let (a, b, y) = (SharedPtr(a.cast_mut()), SharedPtr(b.cast_mut()), SharedPtr(y));
    for_each_row(rows, n, |r| {
        // SAFETY: row r is inside the three buffers by the caller's
        // contract, and each output row is handled by exactly one thread.
        unsafe { f(a.get().add(r * a_stride), b.get().add(r * b_stride), y.get().add(r * y_stride), n) };
    })
}

/// Computes `y = act(x)` over each of `rows` rows of `n` elements. Row `r`
/// of `x` starts at `r * x_stride`, and likewise for `y`.
///
/// Errors: a stride below `n` or a slice too short for its rows.
pub fn activate(
    act: Activation,
    x: &[f32],
    x_stride: usize,
    y: &mut [f32],
    y_stride: usize,
    rows: usize,
    n: usize,
) -> Result<()> {
    check_rows("x", x.len(), rows, n, x_stride)?;
    check_rows("y", y.len(), rows, n, y_stride)?;
    // SAFETY: both slices cover their rows and cannot overlap.
    unsafe { activate_rows(act, x.as_ptr(), x_stride, y.as_mut_ptr(), y_stride, rows, n) }
}

/// Replaces each row of `xy` with `act` of it.
pub fn activate_in_place(act: Activation, xy: &mut [f32], stride: usize, rows: usize, n: usize) -> Result<()> {
    check_rows("xy", xy.len(), rows, n, stride)?;
    let p = xy.as_mut_ptr();
    // SAFETY: the slice covers its rows; in-place use with one stride is
    // allowed by the kernels.
    unsafe { activate_rows(act, p, stride, p, stride, rows, n) }
}

/// Computes `y = silu(gate)·up` (SwiGLU) row-wise over `rows × n`.
///
/// Errors: a stride below `n` or a slice too short for its rows.
#[allow(clippy::too_many_arguments)]
pub fn swiglu(
    gate: &[f32],
    gate_stride: usize,
    up: &[f32],
    up_stride: usize,
    y: &mut [f32],
    y_stride: usize,
    rows: usize,
    n: usize,
) -> Result<()> {
    check_rows("gate", gate.len(), rows, n, gate_stride)?;
    check_rows("up", up.len(), rows, n, up_stride)?;
    check_rows("y", y.len(), rows, n, y_stride)?;
    // SAFETY: the slices cover their rows and the output overlaps neither.
    unsafe {
        binary_rows(BinaryOp::Swiglu, gate.as_ptr(), gate_stride, up.as_ptr(), up_stride, y.as_mut_ptr(), y_stride, rows, n)
    }
}

/// Adds `bias` (`n` values) to every row of `xy` in place.
///
/// Errors: a stride below `n`, a slice too short for its rows, or a bias
/// whose length is not `n`.
pub fn bias_add_in_place(xy: &mut [f32], stride: usize, rows: usize, n: usize, bias: &[f32]) -> Result<()> {
    check_rows("xy", xy.len(), rows, n, stride)?;
    if bias.len() != n {
        return Err(Error::invalid(format!("bias has {} elements but n = {n}; they must match", bias.len())));
    }
    let p = xy.as_mut_ptr();
    // SAFETY: the slice covers its rows; the output is the first input with
    // the same stride, and bias is a separate slice.
    unsafe { binary_rows(BinaryOp::Add, p, stride, bias.as_ptr(), 0, p, stride, rows, n) }
}

fn flat(name: &str, x: &[f32], y: &[f32]) -> Result<()> {
    if x.len() != y.len() {
        return Err(Error::invalid(format!("{name}: x has {} elements but y has {}; they must match", x.len(), y.len())));
    }
    Ok(())
}

/// Computes `y[i] = erf(x[i])` with the kernels' vector erf, whose maximum
/// absolute error is `mlak_kernels::simd::special::ERF_MAX_ABS_ERROR`.
pub fn erf(x: &[f32], y: &mut [f32]) -> Result<()> {
    flat("erf", x, y)?;
    let f = kernels()?.glue.erf;
    // SAFETY: both slices hold x.len() elements and cannot overlap.
    unsafe { f(x.as_ptr(), y.as_mut_ptr(), x.len()) };
    Ok(())
}

/// Computes `y[i] = tanh(x[i])` with the kernels' vector tanh, whose
/// maximum absolute error is `mlak_kernels::simd::special::TANH_MAX_ABS_ERROR`.
pub fn tanh(x: &[f32], y: &mut [f32]) -> Result<()> {
    flat("tanh", x, y)?;
    let f = kernels()?.glue.tanh;
    // SAFETY: both slices hold x.len() elements and cannot overlap.
    unsafe { f(x.as_ptr(), y.as_mut_ptr(), x.len()) };
    Ok(())
}
