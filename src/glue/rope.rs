//! Rotary position embedding driver and its safe API.

use super::norm::check_rows;
use crate::dispatch::kernels;
use crate::error::{Error, Result, Status};
use crate::threads::{num_threads, parallel_for, SharedPtr, MIN_ELEMS_PER_THREAD};

/// Pair layout of the rotated dimensions of a head.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RopeLayout {
    /// Pair i is (2i, 2i + 1): GPT-J and the original RoFormer.
    Interleaved = 0,
    /// Pair i is (i, i + rotary_dim/2): GPT-NeoX and Llama.
    HalfSplit = 1,
}

impl RopeLayout {
    /// Returns the layout with the given numeric code, if there is one.
    pub fn from_code(code: u32) -> Option<RopeLayout> {
        match code {
            0 => Some(RopeLayout::Interleaved),
            1 => Some(RopeLayout::HalfSplit),
            _ => None,
        }
    }
}

/// Geometry and frequencies of a RoPE call.
///
/// A row (one token) holds `heads` heads of `head_dim` values back to back.
/// The first `rotary_dim` values of each head are rotated, the rest pass
/// through. Pair i turns by the angle `position · base^(−2i/rotary_dim)`,
/// where the position of row r is `position_offset + r`, or
/// `position_offset + positions[r]` when per-row positions are given.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeParams {
    pub layout: RopeLayout,
    pub heads: usize,
    pub head_dim: usize,
    /// Even, at most `head_dim`.
    pub rotary_dim: usize,
    /// Frequency base, finite and > 0; 10000 in most models.
    pub base: f32,
    pub position_offset: u64,
}

impl RopeParams {
    /// Checks the geometry and returns the row length heads·head_dim.
    pub(crate) fn validate(&self) -> Result<usize> {
        if !self.rotary_dim.is_multiple_of(2) || self.rotary_dim > self.head_dim {
            return Err(Error::invalid(format!(
                "rotary_dim = {} is invalid; it must be even and at most head_dim = {}",
                self.rotary_dim, self.head_dim
            )));
        }
        if !(self.base > 0.0 && self.base.is_finite()) {
            return Err(Error::invalid(format!("base = {} is invalid; it must be finite and > 0", self.base)));
        }
        self.heads.checked_mul(self.head_dim).ok_or_else(|| {
            Error::invalid(format!("heads = {} times head_dim = {} overflows", self.heads, self.head_dim))
        })
    }
}

/// Returns the position of row `r`, rejecting negative per-row positions
/// and sums that overflow.
pub(crate) fn position(offset: u64, positions: Option<&[i64]>, r: usize) -> Result<u64> {
    let Some(p) = positions else {
        return offset
            .checked_add(r as u64)
            .ok_or_else(|| Error::invalid(format!("position_offset = {offset} plus row {r} overflows")));
    };
    let v = p[r];
    let v = u64::try_from(v)
        .map_err(|_| Error::invalid(format!("positions[{r}] = {v} is negative; positions must be >= 0")))?;
    offset
        .checked_add(v)
        .ok_or_else(|| Error::invalid(format!("position_offset = {offset} plus positions[{r}] = {v} overflows")))
}

/// Rows after which [`Angles`] recomputes sin and cos directly instead of
/// advancing by one position, which bounds the drift of the recurrence to
/// about 256 roundings of f64 (below 1e-13).
const RESEED_ROWS: u32 = 256;

/// cos and sin of pos·inv_freq[i] in f64 for the current row's position,
/// advanced by the angle-addition formulas when rows have consecutive
/// positions: one complex multiply per pair instead of a sin and a cos.
struct Angles {
    cos: Vec<f64>,
    sin: Vec<f64>,
    /// cos and sin of inv_freq[i]: the rotation by one position.
    step_cos: Vec<f64>,
    step_sin: Vec<f64>,
    pos: Option<u64>,
    since_seed: u32,
}

impl Angles {
    fn new(inv_freq: &[f64]) -> Angles {
        let (step_sin, step_cos) = inv_freq.iter().map(|f| f.sin_cos()).unzip();
        let zeros = vec![0.0; inv_freq.len()];
        Angles { cos: zeros.clone(), sin: zeros, step_cos, step_sin, pos: None, since_seed: 0 }
    }

    /// Moves to position `pos`.
    fn set(&mut self, pos: u64, inv_freq: &[f64]) {
        let next = self.pos.is_some_and(|p| p.checked_add(1) == Some(pos));
        if next && self.since_seed < RESEED_ROWS {
            for i in 0..self.cos.len() {
                let (c, s) = (self.cos[i], self.sin[i]);
                self.cos[i] = c * self.step_cos[i] - s * self.step_sin[i];
                self.sin[i] = s * self.step_cos[i] + c * self.step_sin[i];
            }
            self.since_seed += 1;
        } else {
            let p = pos as f64;
            for (i, &f) in inv_freq.iter().enumerate() {
                (self.sin[i], self.cos[i]) = (p * f).sin_cos();
            }
            self.since_seed = 0;
        }
        self.pos = Some(pos);
    }

    /// Writes the f32 tables in the layout that `layout`'s body expects.
    fn fill(&self, layout: RopeLayout, cos: &mut [f32], sin: &mut [f32]) {
        for i in 0..self.cos.len() {
            let (c, s) = (self.cos[i] as f32, self.sin[i] as f32);
            match layout {
                RopeLayout::Interleaved => {
                    cos[2 * i] = c;
                    cos[2 * i + 1] = c;
                    sin[2 * i] = -s;
                    sin[2 * i + 1] = s;
                }
                RopeLayout::HalfSplit => {
                    cos[i] = c;
                    sin[i] = s;
                }
            }
        }
    }
}

/// Applies RoPE to every row.
///
/// # Safety
///
/// `x` and `y` address `rows` rows of heads·head_dim values at their
/// strides; `y` is `x` with the same stride or does not overlap it.
/// `params` passed `validate`, and `positions`, if given, holds `rows`
/// values that passed [`position`].
pub(crate) unsafe fn rope_rows(
    params: &RopeParams,
    x: *const f32,
    x_stride: usize,
    y: *mut f32,
    y_stride: usize,
    rows: usize,
    positions: Option<&[i64]>,
) -> Result<()> {
    let k = kernels()?;
    let f = match params.layout {
        RopeLayout::Interleaved => k.glue.rope_interleaved,
        RopeLayout::HalfSplit => k.glue.rope_half,
    };
    let n = params.heads * params.head_dim;
    if rows == 0 || n == 0 {
        return Ok(());
    }
    let rot = params.rotary_dim;
    let inv_freq: Vec<f64> = (0..rot / 2).map(|i| (params.base as f64).powf(-2.0 * i as f64 / rot as f64)).collect();
    let table_len = match params.layout {
        RopeLayout::Interleaved => rot,
        RopeLayout::HalfSplit => rot / 2,
    };
    let threads = num_threads()?;
    let per_chunk = (MIN_ELEMS_PER_THREAD / n).max(1);
    let (x, y) = (SharedPtr(x.cast_mut()), SharedPtr(y));
    parallel_for(rows, per_chunk, threads, |range| {
        let (mut cos, mut sin) = (vec![0.0f32; table_len], vec![0.0f32; table_len]);
        let mut angles = Angles::new(&inv_freq);
        for r in range {
            // The caller validated every position, so this cannot fail.
            let pos = position(params.position_offset, positions, r).unwrap_or(0);
            angles.set(pos, &inv_freq);
            angles.fill(params.layout, &mut cos, &mut sin);
            // SAFETY: row r is inside both buffers by the caller's contract,
            // each row is handled by one thread, and the tables hold
            // `table_len` values.
            unsafe {
                f(
                    x.get().add(r * x_stride),
                    y.get().add(r * y_stride),
                    params.heads,
                    params.head_dim,
                    rot,
                    cos.as_ptr(),
                    sin.as_ptr(),
                )
            };
        }
    });
    Ok(())
}

/// Checks every position of a call before anything is written.
pub(crate) fn check_positions(offset: u64, positions: Option<&[i64]>, rows: usize) -> Result<()> {
    if let Some(p) = positions {
        if p.len() < rows {
            return Err(Error::new(
                Status::InvalidArgument,
                format!("positions has {} elements but rows = {rows}", p.len()),
            ));
        }
    }
    for r in 0..rows {
        position(offset, positions, r)?;
    }
    Ok(())
}

/// Applies rotary position embedding to each of `rows` rows of `x` (one
/// token per row, laid out as in [`RopeParams`]) into `y`.
///
/// Errors: invalid [`RopeParams`], a stride below heads·head_dim, a slice
/// too short for its rows, or positions that are too few, negative or
/// overflow with the offset.
pub fn rope(
    x: &[f32],
    x_stride: usize,
    y: &mut [f32],
    y_stride: usize,
    rows: usize,
    params: &RopeParams,
    positions: Option<&[i64]>,
) -> Result<()> {
    let n = params.validate()?;
    check_rows("x", x.len(), rows, n, x_stride)?;
    check_rows("y", y.len(), rows, n, y_stride)?;
    check_positions(params.position_offset, positions, rows)?;
    // SAFETY: both slices cover their rows and cannot overlap; the
    // parameters and positions were validated.
    unsafe { rope_rows(params, x.as_ptr(), x_stride, y.as_mut_ptr(), y_stride, rows, positions) }
}

/// Applies rotary position embedding to each row of `xy` in place.
pub fn rope_in_place(
    xy: &mut [f32],
    stride: usize,
    rows: usize,
    params: &RopeParams,
    positions: Option<&[i64]>,
) -> Result<()> {
    let n = params.validate()?;
    check_rows("xy", xy.len(), rows, n, stride)?;
    check_positions(params.position_offset, positions, rows)?;
    let p = xy.as_mut_ptr();
    // SAFETY: the slice covers its rows; in-place use with one stride is
    // allowed by the kernels.
    unsafe { rope_rows(params, p, stride, p, stride, rows, positions) }
}
