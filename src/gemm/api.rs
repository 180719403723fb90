//! Safe Rust API of the GEMM family and the argument checks it shares with
//! the C exports.

use super::pack::Operand;
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use half::{bf16, f16};

/// Storage order of the matrices of a [`sgemm`] call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Element (i, j) of a matrix with leading dimension ld is at `i*ld + j`.
    RowMajor,
    /// Element (i, j) of a matrix with leading dimension ld is at `i + j*ld`.
    ColMajor,
}

/// Whether an operand is used as stored or transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transpose {
    /// op(X) = X.
    No,
    /// op(X) = Xᵀ.
    Yes,
}

/// Input element types of [`gemm_mixed`]: f32, [`half::f16`] and
/// [`half::bf16`], all widened exactly to f32.
pub trait GemmInput: Copy + sealed::Sealed {
    /// The dtype tag of the type.
    const DTYPE: Dtype;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
}

impl GemmInput for f32 {
    const DTYPE: Dtype = Dtype::F32;
}
impl GemmInput for f16 {
    const DTYPE: Dtype = Dtype::F16;
}
impl GemmInput for bf16 {
    const DTYPE: Dtype = Dtype::Bf16;
}

/// Returns the number of elements a `rows × cols` matrix with strides
/// `rs` and `cs` spans from its first element: `(rows-1)·rs + (cols-1)·cs +
/// 1`, or 0 when empty. Fails when the byte size overflows `isize`.
pub(crate) fn extent(name: &str, rows: usize, cols: usize, rs: usize, cs: usize, elem_bytes: usize) -> Result<usize> {
    if rows == 0 || cols == 0 {
        return Ok(0);
    }
    let last = (rows - 1)
        .checked_mul(rs)
        .and_then(|r| (cols - 1).checked_mul(cs).and_then(|c| r.checked_add(c)))
        .and_then(|e| e.checked_add(1));
    match last {
        Some(e) if e.checked_mul(elem_bytes).is_some_and(|b| b <= isize::MAX as usize) => Ok(e),
        _ => Err(Error::invalid(format!(
            "{name}: {rows} x {cols} with strides ({rs}, {cs}) spans more than isize::MAX bytes"
        ))),
    }
}

/// Requires distinct elements of the `rows × cols` output to have distinct
/// addresses: one stride at least 1 and the other at least the span of the
/// first one's dimension.
pub(crate) fn check_output_strides(name: &str, rows: usize, cols: usize, rs: usize, cs: usize) -> Result<()> {
    let ok = rows == 0 || cols == 0 || match (rows > 1, cols > 1) {
        (false, false) => true,
        (true, false) => rs >= 1,
        (false, true) => cs >= 1,
        (true, true) => (cs >= 1 && rs >= cols.saturating_mul(cs)) || (rs >= 1 && cs >= rows.saturating_mul(rs)),
    };
    if !ok {
        return Err(Error::invalid(format!(
            "{name} strides ({rs}, {cs}) make elements of the {rows} x {cols} output share addresses; \
             use rs >= n*cs or cs >= m*rs"
        )));
    }
    Ok(())
}

/// Checks a slice operand and returns it as an [`Operand`].
fn slice_operand<T: GemmInput>(name: &str, x: &[T], rows: usize, cols: usize, rs: usize, cs: usize) -> Result<Operand> {
    let elems = extent(name, rows, cols, rs, cs, std::mem::size_of::<T>())?;
    crate::validate::slice_len(name, x.len(), elems)?;
    Ok(Operand { ptr: x.as_ptr().cast(), dtype: T::DTYPE, rs: rs as isize, cs: cs as isize })
}

/// Computes `C = alpha·A·B + beta·C` with A m×k, B k×n and C m×n, where
/// element (i, j) of X is `x[i*rs_x + j*cs_x]`. A and B may be f32,
/// [`half::f16`] or [`half::bf16`] independently; the products are formed
/// from the exactly widened values and accumulated in f32. One exception:
/// on CPUs with AVX512_BF16, bf16 B times an A whose values are all bf16
/// values (bf16 A, for one) may run on the bf16 dot-product instruction,
/// which treats subnormal inputs and results as zero.
///
/// `beta = 0` never reads C (NaN there does not leak); `alpha = 0` or
/// `k = 0` gives `beta·C`; `m = 0` or `n = 0` touches nothing.
///
/// Errors: a slice shorter than its strided extent, or C strides that map
/// two elements to one address. On error nothing is written.
#[allow(clippy::too_many_arguments)]
pub fn gemm_mixed<TA: GemmInput, TB: GemmInput>(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[TA],
    rs_a: usize,
    cs_a: usize,
    b: &[TB],
    rs_b: usize,
    cs_b: usize,
    beta: f32,
    c: &mut [f32],
    rs_c: usize,
    cs_c: usize,
) -> Result<()> {
    let a = slice_operand("a", a, m, k, rs_a, cs_a)?;
    let b = slice_operand("b", b, k, n, rs_b, cs_b)?;
    let c_elems = extent("c", m, n, rs_c, cs_c, 4)?;
    crate::validate::slice_len("c", c.len(), c_elems)?;
    check_output_strides("c", m, n, rs_c, cs_c)?;
    // SAFETY: the slices cover their strided extents, C's elements are
    // distinct, and a mutable slice overlaps no shared one.
    unsafe { super::gemm_strided(m, n, k, alpha, a, b, beta, c.as_mut_ptr(), rs_c as isize, cs_c as isize) }
}

/// The f32 form of [`gemm_mixed`]: `C = alpha·A·B + beta·C` over strided
/// slices.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_strided(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    rs_a: usize,
    cs_a: usize,
    b: &[f32],
    rs_b: usize,
    cs_b: usize,
    beta: f32,
    c: &mut [f32],
    rs_c: usize,
    cs_c: usize,
) -> Result<()> {
    gemm_mixed(m, n, k, alpha, a, rs_a, cs_a, b, rs_b, cs_b, beta, c, rs_c, cs_c)
}

/// Returns the (row, column) strides of op(X) for a matrix stored with
/// leading dimension `ld` in `layout`.
pub(crate) fn op_strides(layout: Layout, trans: Transpose, ld: usize) -> (usize, usize) {
    match (layout, trans) {
        (Layout::RowMajor, Transpose::No) | (Layout::ColMajor, Transpose::Yes) => (ld, 1),
        (Layout::RowMajor, Transpose::Yes) | (Layout::ColMajor, Transpose::No) => (1, ld),
    }
}

/// Returns the number of elements in one stored row (row-major) or column
/// (column-major) of the matrix whose op is `rows × cols`: the lower bound
/// of its leading dimension.
pub(crate) fn stored_width(layout: Layout, trans: Transpose, rows: usize, cols: usize) -> usize {
    match (layout, trans) {
        (Layout::RowMajor, Transpose::No) | (Layout::ColMajor, Transpose::Yes) => cols,
        (Layout::RowMajor, Transpose::Yes) | (Layout::ColMajor, Transpose::No) => rows,
    }
}

fn check_ld(name: &str, ld: usize, width: usize) -> Result<()> {
    if ld < width.max(1) {
        return Err(Error::invalid(format!("{name} = {ld} is invalid; it must be >= max(1, {width})")));
    }
    Ok(())
}

/// Computes `C = alpha·op(A)·op(B) + beta·C` with CBLAS conventions: op(A)
/// is m×k, op(B) k×n and C m×n, stored in `layout` with leading dimensions
/// `lda`, `ldb` and `ldc`, each at least the stored row (row-major) or
/// column (column-major) length and at least 1.
///
/// Semantics and errors as for [`gemm_mixed`], plus a leading dimension
/// below its minimum.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    layout: Layout,
    trans_a: Transpose,
    trans_b: Transpose,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) -> Result<()> {
    check_ld("lda", lda, stored_width(layout, trans_a, m, k))?;
    check_ld("ldb", ldb, stored_width(layout, trans_b, k, n))?;
    check_ld("ldc", ldc, stored_width(layout, Transpose::No, m, n))?;
    let (rs_a, cs_a) = op_strides(layout, trans_a, lda);
    let (rs_b, cs_b) = op_strides(layout, trans_b, ldb);
    let (rs_c, cs_c) = op_strides(layout, Transpose::No, ldc);
    sgemm_strided(m, n, k, alpha, a, rs_a, cs_a, b, rs_b, cs_b, beta, c, rs_c, cs_c)
}
