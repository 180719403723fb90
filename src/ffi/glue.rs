//! C exports of the glue family: norms, activations, SwiGLU, bias add and
//! rotary position embedding.

use super::guard;
use crate::error::{Error, Result, Status};
use crate::glue::activation::{self as act, Activation, BinaryOp};
use crate::glue::norm::{self, NormArgs, NormKind};
use crate::glue::rope::{self, RopeLayout, RopeParams};
use crate::validate;
use std::mem::size_of;

/// A validated strided `rows × n` buffer: pointer, stride and byte range.
#[derive(Clone, Copy)]
struct Rows {
    ptr: *const f32,
    stride: usize,
    bytes: (*const u8, usize),
}

impl Rows {
    /// Validates a required buffer of `rows` rows of `n` floats.
    fn new(name: &str, p: *const f32, stride: i64, rows: usize, n: usize) -> Result<Rows> {
        let stride = validate::row_stride(&format!("{name}_row_stride"), stride, n)?;
        let elems = validate::span(name, rows, n, stride, size_of::<f32>())?;
        validate::pointer(name, p, elems)?;
        Ok(Rows { ptr: p, stride, bytes: (p.cast(), elems * size_of::<f32>()) })
    }

    /// Validates an optional buffer: NULL means absent.
    fn optional(name: &str, p: *const f32, stride: i64, rows: usize, n: usize) -> Result<Option<Rows>> {
        if p.is_null() {
            return Ok(None);
        }
        Rows::new(name, p, stride, rows, n).map(Some)
    }

    /// Rejects an output that overlaps this input, unless it is the same
    /// buffer with the same stride.
    fn check_output(&self, name: &str, out: &Rows, out_name: &str) -> Result<()> {
        let same = out.stride == self.stride;
        validate::no_overlap(out_name, out.bytes, name, self.bytes, same)
    }
}

fn dims(rows: i64, n: i64) -> Result<(usize, usize)> {
    Ok((validate::dim("rows", rows)?, validate::dim("n", n)?))
}

/// Validates an optional vector of `n` floats (gamma, beta, bias).
fn vector(name: &str, p: *const f32, n: usize, required: bool) -> Result<(*const f32, (*const u8, usize))> {
    if p.is_null() && !required {
        return Ok((p, (p.cast(), 0)));
    }
    validate::pointer(name, p, n)?;
    Ok((p, (p.cast(), n * size_of::<f32>())))
}

#[allow(clippy::too_many_arguments)]
fn norm_export(
    kind: NormKind,
    x: *const f32,
    x_row_stride: i64,
    residual: *const f32,
    residual_row_stride: i64,
    gamma: *const f32,
    beta: *const f32,
    eps: f32,
    y: *mut f32,
    y_row_stride: i64,
    sum: *mut f32,
    sum_row_stride: i64,
    rows: i64,
    n: i64,
) -> Status {
    guard(|| {
        let (rows, n) = dims(rows, n)?;
        norm::check_eps(eps)?;
        let xr = Rows::new("x", x, x_row_stride, rows, n)?;
        let rr = Rows::optional("residual", residual, residual_row_stride, rows, n)?;
        let yr = Rows::new("y", y, y_row_stride, rows, n)?;
        let sr = Rows::optional("sum", sum, sum_row_stride, rows, n)?;
        let (gamma, gamma_bytes) = vector("gamma", gamma, n, false)?;
        let (beta, beta_bytes) = vector("beta", beta, n, false)?;

        let mut outputs = vec![(yr, "y")];
        outputs.extend(sr.map(|s| (s, "sum")));
        for (out, out_name) in &outputs {
            xr.check_output("x", out, out_name)?;
            if let Some(r) = &rr {
                r.check_output("residual", out, out_name)?;
            }
            validate::no_overlap(out_name, out.bytes, "gamma", gamma_bytes, false)?;
            validate::no_overlap(out_name, out.bytes, "beta", beta_bytes, false)?;
        }
        if let Some(s) = &sr {
            validate::no_overlap("sum", s.bytes, "y", yr.bytes, false)?;
        }

        let a = NormArgs {
            x: xr.ptr,
            x_stride: xr.stride,
            residual: rr.map_or(std::ptr::null(), |r| r.ptr),
            residual_stride: rr.map_or(0, |r| r.stride),
            sum: sr.map_or(std::ptr::null_mut(), |s| s.ptr.cast_mut()),
            sum_stride: sr.map_or(0, |s| s.stride),
            gamma,
            beta,
            y: yr.ptr.cast_mut(),
            y_stride: yr.stride,
            rows,
            n,
            eps,
        };
        // SAFETY: every pointer was checked to address its strided rows,
        // and the outputs alias inputs only exactly, never each other.
        unsafe { norm::norm_rows(kind, &a) }
    })
}

/// Computes LayerNorm over each of `rows` rows of `n` floats:
/// `h = x + residual` (or `h = x` when `residual` is NULL), then
/// `y = (h - mean(h)) / sqrt(var(h) + eps) * gamma + beta` with the
/// population variance. `gamma` and `beta` hold n floats each; NULL means
/// scale 1 and shift 0. `sum`, if not NULL, receives h, which is the updated
/// residual stream of a pre-norm transformer block.
///
/// Row r of each matrix starts at `ptr + r * row_stride` (strides in
/// elements, at least n; the stride of a NULL buffer is ignored). `y` and
/// `sum` may each be `x` or `residual` with the same stride (in place) but
/// must not otherwise overlap an input, and must not overlap each other.
/// `eps` must be finite and >= 0; with eps = 0 a constant row gives NaN.
///
/// Non-finite policy: a NaN or infinity in h makes the whole output row
/// NaN. The sums run in f32, so a row whose sum overflows f32 behaves as if
/// it held an infinity.
///
/// Pointers may be NULL when rows or n is 0. On error nothing is written.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn mlak_layernorm_f32(
    x: *const f32,
    x_row_stride: i64,
    residual: *const f32,
    residual_row_stride: i64,
    gamma: *const f32,
    beta: *const f32,
    eps: f32,
    y: *mut f32,
    y_row_stride: i64,
    sum: *mut f32,
    sum_row_stride: i64,
    rows: i64,
    n: i64,
) -> Status {
    norm_export(
        NormKind::LayerNorm,
        x,
        x_row_stride,
        residual,
        residual_row_stride,
        gamma,
        beta,
        eps,
        y,
        y_row_stride,
        sum,
        sum_row_stride,
        rows,
        n,
    )
}

/// Computes RMSNorm over each of `rows` rows of `n` floats:
/// `h = x + residual` (or `h = x`), then
/// `y = h / sqrt(mean(h^2) + eps) * gamma`. Arguments, aliasing and errors
/// as for `mlak_layernorm_f32`, without beta.
///
/// Non-finite policy: an infinity in h makes the mean square infinite, so
/// the finite entries of that row become 0 and the infinite ones NaN; a
/// NaN makes the row NaN. The sum of squares runs in f32, so |h| must stay
/// below about 1.8e19 / sqrt(n).
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn mlak_rmsnorm_f32(
    x: *const f32,
    x_row_stride: i64,
    residual: *const f32,
    residual_row_stride: i64,
    gamma: *const f32,
    eps: f32,
    y: *mut f32,
    y_row_stride: i64,
    sum: *mut f32,
    sum_row_stride: i64,
    rows: i64,
    n: i64,
) -> Status {
    norm_export(
        NormKind::RmsNorm,
        x,
        x_row_stride,
        residual,
        residual_row_stride,
        gamma,
        std::ptr::null(),
        eps,
        y,
        y_row_stride,
        sum,
        sum_row_stride,
        rows,
        n,
    )
}

fn activation_export(
    which: Activation,
    x: *const f32,
    x_row_stride: i64,
    y: *mut f32,
    y_row_stride: i64,
    rows: i64,
    n: i64,
) -> Status {
    guard(|| {
        let (rows, n) = dims(rows, n)?;
        let xr = Rows::new("x", x, x_row_stride, rows, n)?;
        let yr = Rows::new("y", y, y_row_stride, rows, n)?;
        xr.check_output("x", &yr, "y")?;
        // SAFETY: both buffers cover their rows; y is x with the same stride
        // or disjoint from it.
        unsafe { act::activate_rows(which, xr.ptr, xr.stride, y, yr.stride, rows, n) }
    })
}

/// Computes `y = gelu(x)` in the erf form, `x * (1 + erf(x / sqrt(2))) / 2`
/// (BERT, PyTorch's default), over each of `rows` rows of `n` floats.
/// Strides as for `mlak_softmax_f32`; `y` may be `x` with the same stride.
///
/// Accuracy: relative error at most (8 + x^2) * 1.2e-7 for every finite x.
/// The lower tail uses erfc directly, so it does not cancel; the x^2 term
/// is the rounding of x / sqrt(2) amplified by erfc's slope. Non-finite policy: +inf gives +inf, -inf gives 0, NaN gives NaN.
#[no_mangle]
pub extern "C" fn mlak_gelu_f32(
    x: *const f32,
    x_row_stride: i64,
    y: *mut f32,
    y_row_stride: i64,
    rows: i64,
    n: i64,
) -> Status {
    activation_export(Activation::GeluErf, x, x_row_stride, y, y_row_stride, rows, n)
}

/// Computes `y = gelu(x)` in the tanh form,
/// `x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))) / 2` (GPT-2), evaluated
/// as the equal `x * sigmoid(2u)`. Arguments and non-finite policy as for
/// `mlak_gelu_f32`.
#[no_mangle]
pub extern "C" fn mlak_gelu_tanh_f32(
    x: *const f32,
    x_row_stride: i64,
    y: *mut f32,
    y_row_stride: i64,
    rows: i64,
    n: i64,
) -> Status {
    activation_export(Activation::GeluTanh, x, x_row_stride, y, y_row_stride, rows, n)
}

/// Computes `y = silu(x) = x * sigmoid(x)` row-wise. Arguments and
/// non-finite policy as for `mlak_gelu_f32`.
#[no_mangle]
pub extern "C" fn mlak_silu_f32(
    x: *const f32,
    x_row_stride: i64,
    y: *mut f32,
    y_row_stride: i64,
    rows: i64,
    n: i64,
) -> Status {
    activation_export(Activation::Silu, x, x_row_stride, y, y_row_stride, rows, n)
}

/// Computes `y = silu(gate) * up` (SwiGLU) over each of `rows` rows of `n`
/// floats. Each matrix has its own row stride (at least n), so `gate` and
/// `up` may be the two halves of one fused projection output. `y` may be
/// `gate` or `up` with the same stride, but must not otherwise overlap
/// them. Non-finite values follow IEEE rules after SiLU (SiLU(-inf) = 0,
/// and 0 * inf is NaN).
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn mlak_swiglu_f32(
    gate: *const f32,
    gate_row_stride: i64,
    up: *const f32,
    up_row_stride: i64,
    y: *mut f32,
    y_row_stride: i64,
    rows: i64,
    n: i64,
) -> Status {
    guard(|| {
        let (rows, n) = dims(rows, n)?;
        let gr = Rows::new("gate", gate, gate_row_stride, rows, n)?;
        let ur = Rows::new("up", up, up_row_stride, rows, n)?;
        let yr = Rows::new("y", y, y_row_stride, rows, n)?;
        gr.check_output("gate", &yr, "y")?;
        ur.check_output("up", &yr, "y")?;
        // SAFETY: the buffers cover their rows; y aliases an input only
        // exactly.
        unsafe { act::binary_rows(BinaryOp::Swiglu, gate, gr.stride, up, ur.stride, y, yr.stride, rows, n) }
    })
}

/// Computes `y = x + bias` for each of `rows` rows of `n` floats, with
/// `bias` holding n floats. `y` may be `x` with the same stride (in place)
/// but must not otherwise overlap `x` or `bias`.
#[no_mangle]
pub extern "C" fn mlak_bias_add_f32(
    x: *const f32,
    x_row_stride: i64,
    bias: *const f32,
    y: *mut f32,
    y_row_stride: i64,
    rows: i64,
    n: i64,
) -> Status {
    guard(|| {
        let (rows, n) = dims(rows, n)?;
        let xr = Rows::new("x", x, x_row_stride, rows, n)?;
        let yr = Rows::new("y", y, y_row_stride, rows, n)?;
        let elems = if rows == 0 { 0 } else { n };
        let (bias, bias_bytes) = vector("bias", bias, elems, true)?;
        xr.check_output("x", &yr, "y")?;
        validate::no_overlap("y", yr.bytes, "bias", bias_bytes, false)?;
        // SAFETY: the buffers cover their rows, bias holds n floats (read
        // with stride 0), and y aliases x only exactly.
        unsafe { act::binary_rows(BinaryOp::Add, x, xr.stride, bias, 0, y, yr.stride, rows, n) }
    })
}

/// Computes `y[i] = erf(x[i])` for `n` floats with the vector erf that the
/// GELU kernels use: absolute error at most 1.5e-7 for every finite x.
/// ±inf gives ±1, NaN gives NaN. `y` may be `x`, but must not otherwise
/// overlap it.
#[no_mangle]
pub extern "C" fn mlak_erf_f32(x: *const f32, y: *mut f32, n: i64) -> Status {
    activation_flat(x, y, n, |k| k.glue_erf())
}

/// Computes `y[i] = tanh(x[i])` for `n` floats with the vector tanh:
/// absolute error at most 1.2e-7 and relative error at most 3e-7 for every
/// finite x. ±inf gives ±1, NaN gives NaN. Aliasing as for `mlak_erf_f32`.
#[no_mangle]
pub extern "C" fn mlak_tanh_f32(x: *const f32, y: *mut f32, n: i64) -> Status {
    activation_flat(x, y, n, |k| k.glue_tanh())
}

/// Picks one flat row kernel from a dispatch table.
type PickRowFn = fn(&crate::kernels_table::Kernels) -> unsafe fn(*const f32, *mut f32, usize);

fn activation_flat(x: *const f32, y: *mut f32, n: i64, pick: PickRowFn) -> Status {
    guard(|| {
        let n = validate::dim("n", n)?;
        let xr = Rows::new("x", x, n as i64, 1, n)?;
        let yr = Rows::new("y", y, n as i64, 1, n)?;
        xr.check_output("x", &yr, "y")?;
        let f = pick(crate::dispatch::kernels()?);
        // SAFETY: both pointers address n floats and are equal or disjoint.
        unsafe { f(x, y, n) };
        Ok(())
    })
}

/// Applies rotary position embedding to each of `rows` rows (tokens).
///
/// A row contains `heads` heads of `head_dim` floats back to back, and rows
/// start `x_row_stride` floats apart (at least heads * head_dim). The first
/// `rotary_dim` values of each head (even, at most head_dim) are rotated
/// in pairs and the rest are copied. `layout` is a `mlak_rope_layout`:
/// interleaved pairs (2i, 2i+1) or half-split pairs (i, i + rotary_dim/2).
/// Pair i of a row at position p turns by the angle
/// `p * base^(-2i/rotary_dim)`: (a, b) becomes
/// (a cos - b sin, b cos + a sin). The angles, cosines and sines are
/// computed in double precision, then rounded to float.
///
/// The position of row r is `position_offset + r`, or
/// `position_offset + positions[r]` when `positions` is not NULL; it then
/// contains `rows` values, each at least 0. `base` must be finite and > 0
/// (10000 in most models), and `position_offset` at least 0. `y` may be
/// `x` with the same stride but must not otherwise overlap it. NaN and
/// infinities propagate through the products.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn mlak_rope_f32(
    x: *const f32,
    x_row_stride: i64,
    y: *mut f32,
    y_row_stride: i64,
    rows: i64,
    heads: i64,
    head_dim: i64,
    rotary_dim: i64,
    layout: u32,
    base: f32,
    position_offset: i64,
    positions: *const i64,
) -> Status {
    guard(|| {
        let rows = validate::dim("rows", rows)?;
        let layout = RopeLayout::from_code(layout).ok_or_else(|| {
            Error::invalid(format!("layout = {layout} is not a mlak_rope_layout value; use 0 or 1"))
        })?;
        let params = RopeParams {
            layout,
            heads: validate::dim("heads", heads)?,
            head_dim: validate::dim("head_dim", head_dim)?,
            rotary_dim: validate::dim("rotary_dim", rotary_dim)?,
            base,
            position_offset: u64::try_from(position_offset).map_err(|_| {
                Error::invalid(format!("position_offset = {position_offset} is negative; it must be >= 0"))
            })?,
        };
        let n = params.validate()?;
        let xr = Rows::new("x", x, x_row_stride, rows, n)?;
        let yr = Rows::new("y", y, y_row_stride, rows, n)?;
        xr.check_output("x", &yr, "y")?;
        let positions = if positions.is_null() {
            None
        } else {
            validate::pointer("positions", positions, rows)?;
            if rows == 0 {
                None
            } else {
                // SAFETY: checked non-NULL and aligned; the caller provides
                // `rows` values.
                Some(unsafe { std::slice::from_raw_parts(positions, rows) })
            }
        };
        if let Some(p) = positions {
            validate::no_overlap("y", yr.bytes, "positions", (p.as_ptr().cast(), rows * size_of::<i64>()), false)?;
        }
        rope::check_positions(params.position_offset, positions, rows)?;
        // SAFETY: both buffers cover their rows, y is x or disjoint, and
        // the parameters and positions were validated.
        unsafe { rope::rope_rows(&params, x, xr.stride, y, yr.stride, rows, positions) }
    })
}
