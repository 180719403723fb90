//! C exports of the GEMM family: the native strided entry points and the
//! BLAS-compatible `cblas_sgemm` and `sgemm_`.

use super::guard;
use crate::dtype::Dtype;
use crate::error::{Error, Result, Status};
use crate::gemm::{self, Layout, Operand, Transpose};
use crate::validate;
use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void};

/// `CblasRowMajor`, as in every CBLAS header.
pub const MLAK_CBLAS_ROW_MAJOR: c_int = 101;
/// `CblasColMajor`.
pub const MLAK_CBLAS_COL_MAJOR: c_int = 102;
/// `CblasNoTrans`.
pub const MLAK_CBLAS_NO_TRANS: c_int = 111;
/// `CblasTrans`.
pub const MLAK_CBLAS_TRANS: c_int = 112;
/// `CblasConjTrans`; the same as `CblasTrans` for real matrices.
pub const MLAK_CBLAS_CONJ_TRANS: c_int = 113;

thread_local! {
    /// Outcome of this thread's most recent BLAS-compatible call.
    static BLAS_INFO: Cell<c_int> = const { Cell::new(0) };
}

/// Returns the outcome of the most recent `cblas_sgemm` or `sgemm_` call on
/// this thread. It is 0 when the call succeeded (or before any call). A
/// rejected call gives the 1-based position of its first invalid argument,
/// the INFO value that reference BLAS passes to XERBLA. Any other failure,
/// such as a workspace allocation or an `MLAK_ISA` naming a level this CPU
/// lacks, gives -1. `mlak_last_error` describes every failure. A rejected call returns without writing C, printing or
/// aborting.
#[no_mangle]
pub extern "C" fn mlak_blas_last_error_parameter() -> c_int {
    BLAS_INFO.with(Cell::get)
}

/// Checks a C stride, which must be non-negative.
fn stride(name: &str, value: i64) -> Result<usize> {
    usize::try_from(value).map_err(|_| Error::invalid(format!("{name} = {value} is negative; strides must be >= 0")))
}

/// A validated strided C matrix argument: strides and the byte range it
/// spans.
struct MatrixArg {
    rs: usize,
    cs: usize,
    bytes: (*const u8, usize),
}

/// Validates pointer, strides and extent of a `rows × cols` matrix of
/// `elem_bytes`-byte elements.
fn matrix_arg(
    name: &str,
    p: *const u8,
    align: usize,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
    elem_bytes: usize,
) -> Result<MatrixArg> {
    let elems = gemm::api_extent(name, rows, cols, rs, cs, elem_bytes)?;
    if elems > 0 {
        if p.is_null() {
            return Err(Error::new(Status::NullPointer, format!("{name} is NULL but must address {elems} elements")));
        }
        if !(p as usize).is_multiple_of(align) {
            return Err(Error::invalid(format!("{name} = {p:p} is not aligned to {align} bytes")));
        }
    }
    Ok(MatrixArg { rs, cs, bytes: (p, elems * elem_bytes) })
}

/// Validates the output C (distinct element addresses, no overlap with A
/// or B) and runs the product.
#[allow(clippy::too_many_arguments)]
fn run_checked(
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    a: (Operand, &MatrixArg),
    b: (Operand, &MatrixArg),
    beta: f32,
    c: *mut f32,
    cm: &MatrixArg,
) -> Result<()> {
    gemm::api_check_output_strides("c", m, n, cm.rs, cm.cs)?;
    validate::no_overlap("c", cm.bytes, "a", a.1.bytes, false)?;
    validate::no_overlap("c", cm.bytes, "b", b.1.bytes, false)?;
    // SAFETY: every pointer was checked to address its strided matrix, C's
    // elements are distinct and C overlaps neither input.
    unsafe { gemm::gemm_strided(m, n, k, alpha, a.0, b.0, beta, c, cm.rs as isize, cm.cs as isize) }
}

/// Computes `C = alpha·A·B + beta·C` for A m×k, B k×n and C m×n in f32,
/// where element (i, j) of X is `x[i*rs_x + j*cs_x]` (strides in elements,
/// >= 0; a zero stride in A or B repeats a row or column).
///
/// Semantics: beta = 0 never reads C, so NaN or garbage there does not
/// leak; alpha = 0 or k = 0 gives beta·C without reading A or B (NaN in A or
/// B then does not propagate); m = 0 or n = 0 returns success touching
/// nothing. Otherwise NaN and infinities propagate as IEEE arithmetic does.
///
/// Rules: distinct elements of C must have distinct addresses, so one C
/// stride is at least 1 and the other at least the span of the first one's
/// dimension. The byte range C spans must not overlap the ranges of A or B. Pointers may be NULL when their matrix is empty.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn mlak_sgemm(
    m: i64,
    n: i64,
    k: i64,
    alpha: f32,
    a: *const f32,
    rs_a: i64,
    cs_a: i64,
    b: *const f32,
    rs_b: i64,
    cs_b: i64,
    beta: f32,
    c: *mut f32,
    rs_c: i64,
    cs_c: i64,
) -> Status {
    let a: *const c_void = a.cast();
    let b: *const c_void = b.cast();
    mixed_impl((m, n, k), alpha, (a, Dtype::F32 as u32, rs_a, cs_a), (b, Dtype::F32 as u32, rs_b, cs_b), beta, c, rs_c, cs_c)
}

/// As `mlak_sgemm`, with A and B each of the element type given by
/// `a_dtype` and `b_dtype` (`mlak_dtype` values: f32, or f16 / bf16 as
/// `uint16_t` bit patterns). Strides count elements of each operand's own
/// type. Inputs are widened to f32 exactly; products are accumulated in f32
/// and C is f32. One exception: on CPUs with AVX512_BF16, bf16 B times an A
/// whose values are all bf16 values (bf16 A, for one) may run on the bf16
/// dot-product instruction, which treats subnormal inputs and results as
/// zero.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn mlak_gemm_mixed(
    m: i64,
    n: i64,
    k: i64,
    alpha: f32,
    a: *const c_void,
    a_dtype: u32,
    rs_a: i64,
    cs_a: i64,
    b: *const c_void,
    b_dtype: u32,
    rs_b: i64,
    cs_b: i64,
    beta: f32,
    c: *mut f32,
    rs_c: i64,
    cs_c: i64,
) -> Status {
    mixed_impl((m, n, k), alpha, (a, a_dtype, rs_a, cs_a), (b, b_dtype, rs_b, cs_b), beta, c, rs_c, cs_c)
}

type RawOperand = (*const c_void, u32, i64, i64);

#[allow(clippy::too_many_arguments)]
fn mixed_impl(
    (m, n, k): (i64, i64, i64),
    alpha: f32,
    a: RawOperand,
    b: RawOperand,
    beta: f32,
    c: *mut f32,
    rs_c: i64,
    cs_c: i64,
) -> Status {
    guard(|| {
        let m = validate::dim("m", m)?;
        let n = validate::dim("n", n)?;
        let k = validate::dim("k", k)?;
        let operand = |name: &str, (p, code, rs, cs): RawOperand, rows: usize, cols: usize| -> Result<(Operand, MatrixArg)> {
            let dtype = Dtype::from_code(code).ok_or_else(|| {
                Error::invalid(format!("{name}_dtype = {code} is not a mlak_dtype value; valid values are 0 to 2"))
            })?;
            let rs = stride(&format!("rs_{name}"), rs)?;
            let cs = stride(&format!("cs_{name}"), cs)?;
            let arg = matrix_arg(name, p.cast(), dtype.size(), rows, cols, rs, cs, dtype.size())?;
            Ok((Operand { ptr: p.cast(), dtype, rs: rs as isize, cs: cs as isize }, arg))
        };
        let (ao, am) = operand("a", a, m, k)?;
        let (bo, bm) = operand("b", b, k, n)?;
        let cm = matrix_arg("c", c.cast(), 4, m, n, stride("rs_c", rs_c)?, stride("cs_c", cs_c)?, 4)?;
        run_checked((m, n, k), alpha, (ao, &am), (bo, &bm), beta, c, &cm)
    })
}

/// A BLAS argument error: the 1-based position of the argument and the
/// message.
type BlasResult<T> = std::result::Result<T, (c_int, Error)>;

fn at<T>(position: c_int, r: Result<T>) -> BlasResult<T> {
    r.map_err(|e| (position, e))
}

/// Runs a BLAS-compatible call: records the INFO value read by
/// `mlak_blas_last_error_parameter` and the message read by
/// `mlak_last_error`.
fn blas_call(body: impl FnOnce() -> BlasResult<()>) {
    let mut position = 0;
    let status = guard(|| {
        body().map_err(|(p, e)| {
            position = p;
            e
        })
    });
    let info = match status {
        Status::Ok => 0,
        _ if position > 0 => position,
        _ => -1,
    };
    BLAS_INFO.with(|c| c.set(info));
}

/// Positions of the arguments of a GEMM call in the BLAS interface being
/// served, for the INFO value.
struct Positions {
    m: c_int,
    n: c_int,
    k: c_int,
    a: c_int,
    lda: c_int,
    b: c_int,
    ldb: c_int,
    c: c_int,
    ldc: c_int,
}

fn dim(name: &str, value: c_int) -> Result<usize> {
    validate::dim(name, i64::from(value))
}

fn leading_dim(name: &str, value: c_int, width: usize) -> Result<usize> {
    let ld = i64::from(value);
    if ld < width.max(1) as i64 {
        return Err(Error::invalid(format!("{name} = {ld} is invalid; it must be >= max(1, {width})")));
    }
    Ok(ld as usize)
}

/// Validates and runs a BLAS-convention sgemm after the layout and
/// transposes are decoded.
#[allow(clippy::too_many_arguments)]
fn blas_sgemm(
    pos: &Positions,
    layout: Layout,
    ta: Transpose,
    tb: Transpose,
    (m, n, k): (c_int, c_int, c_int),
    alpha: f32,
    a: *const f32,
    lda: c_int,
    b: *const f32,
    ldb: c_int,
    beta: f32,
    c: *mut f32,
    ldc: c_int,
) -> BlasResult<()> {
    let m = at(pos.m, dim("m", m))?;
    let n = at(pos.n, dim("n", n))?;
    let k = at(pos.k, dim("k", k))?;
    let lda = at(pos.lda, leading_dim("lda", lda, gemm::api_stored_width(layout, ta, m, k)))?;
    let ldb = at(pos.ldb, leading_dim("ldb", ldb, gemm::api_stored_width(layout, tb, k, n)))?;
    let ldc = at(pos.ldc, leading_dim("ldc", ldc, gemm::api_stored_width(layout, Transpose::No, m, n)))?;
    let (rs_a, cs_a) = gemm::api_op_strides(layout, ta, lda);
    let (rs_b, cs_b) = gemm::api_op_strides(layout, tb, ldb);
    let (rs_c, cs_c) = gemm::api_op_strides(layout, Transpose::No, ldc);
    let am = at(pos.a, matrix_arg("a", a.cast(), 4, m, k, rs_a, cs_a, 4))?;
    let bm = at(pos.b, matrix_arg("b", b.cast(), 4, k, n, rs_b, cs_b, 4))?;
    let cm = at(pos.c, matrix_arg("c", c.cast(), 4, m, n, rs_c, cs_c, 4))?;
    let ao = Operand { ptr: a.cast(), dtype: Dtype::F32, rs: rs_a as isize, cs: cs_a as isize };
    let bo = Operand { ptr: b.cast(), dtype: Dtype::F32, rs: rs_b as isize, cs: cs_b as isize };
    let result = run_checked((m, n, k), alpha, (ao, &am), (bo, &bm), beta, c, &cm);
    match result {
        Err(e) if e.status() == Status::InvalidArgument => Err((pos.c, e)),
        Err(e) => Err((0, e)),
        Ok(()) => Ok(()),
    }
}

/// BLAS-compatible `cblas_sgemm`: `C = alpha·op(A)·op(B) + beta·C` with
/// op(A) m×k, op(B) k×n and C m×n, in `order` (`CblasRowMajor` = 101 or
/// `CblasColMajor` = 102), with `trans_a` and `trans_b` each
/// `CblasNoTrans` (111), `CblasTrans` (112) or `CblasConjTrans` (113, the
/// same as 112 for real data). Each leading dimension must be at least
/// max(1, stored row length) in row-major or max(1, stored column length)
/// in column-major order, as in reference CBLAS.
///
/// Invalid arguments are reported the BLAS way without aborting or
/// printing: the call returns without touching C, and
/// `mlak_blas_last_error_parameter()` returns the argument's position in
/// this signature (1 order, 2 trans_a, 3 trans_b, 4 m, 5 n, 6 k, 9 lda,
/// 11 ldb, 14 ldc), checked in that order. Beyond reference CBLAS, a NULL
/// or misaligned A, B or C with a non-empty extent gives 8, 10 or 13, and
/// C overlapping A or B gives 13. `mlak_last_error` returns the message.
///
/// Semantics as for `mlak_sgemm`: beta = 0 never reads C, alpha = 0 or
/// k = 0 gives beta·C, m = 0 or n = 0 returns at once.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn cblas_sgemm(
    order: c_int,
    trans_a: c_int,
    trans_b: c_int,
    m: c_int,
    n: c_int,
    k: c_int,
    alpha: f32,
    a: *const f32,
    lda: c_int,
    b: *const f32,
    ldb: c_int,
    beta: f32,
    c: *mut f32,
    ldc: c_int,
) {
    blas_call(|| {
        let layout = match order {
            MLAK_CBLAS_ROW_MAJOR => Layout::RowMajor,
            MLAK_CBLAS_COL_MAJOR => Layout::ColMajor,
            _ => {
                let msg = format!("order = {order} is invalid; use CblasRowMajor (101) or CblasColMajor (102)");
                return Err((1, Error::invalid(msg)));
            }
        };
        let trans = |name: &str, value: c_int, position: c_int| match value {
            MLAK_CBLAS_NO_TRANS => Ok(Transpose::No),
            MLAK_CBLAS_TRANS | MLAK_CBLAS_CONJ_TRANS => Ok(Transpose::Yes),
            _ => Err((
                position,
                Error::invalid(format!(
                    "{name} = {value} is invalid; use CblasNoTrans (111), CblasTrans (112) or CblasConjTrans (113)"
                )),
            )),
        };
        let ta = trans("trans_a", trans_a, 2)?;
        let tb = trans("trans_b", trans_b, 3)?;
        let pos = Positions { m: 4, n: 5, k: 6, a: 8, lda: 9, b: 10, ldb: 11, c: 13, ldc: 14 };
        blas_sgemm(&pos, layout, ta, tb, (m, n, k), alpha, a, lda, b, ldb, beta, c, ldc)
    })
}

/// Reads a by-reference Fortran argument, reporting NULL at `position`.
///
/// # Safety
///
/// `p` is NULL or points to a readable value.
unsafe fn by_ref<T: Copy>(name: &str, p: *const T, position: c_int) -> BlasResult<T> {
    if p.is_null() {
        return Err((position, Error::new(Status::NullPointer, format!("{name} is NULL; every argument is by reference"))));
    }
    // SAFETY: checked non-NULL; the caller passes a readable value.
    Ok(unsafe { p.read_unaligned() })
}

/// Fortran-convention `sgemm_` (column-major, every argument by
/// reference): `C = alpha·op(A)·op(B) + beta·C` with `transa` and `transb`
/// each 'N', 'T' or 'C' (either case; 'C' is 'T' for real data).
///
/// Invalid arguments are numbered as reference BLAS numbers them in INFO,
/// but without calling XERBLA, aborting or printing. The call returns
/// without touching C, and `mlak_blas_last_error_parameter()` returns
/// 1 transa, 2 transb, 3 m, 4 n, 5 k, 8 lda, 10 ldb or 13 ldc, checked in
/// that order.
/// Beyond reference BLAS, a NULL argument pointer gives its own position
/// (6 alpha, 7 a, 9 b, 11 beta, 12 c, the others as above), a NULL or
/// misaligned A, B or C with a non-empty extent gives 7, 9 or 12, and C
/// overlapping A or B gives 12. The hidden string-length arguments that
/// Fortran compilers append are ignored.
///
/// # Safety
///
/// Each non-NULL pointer addresses a readable value of its type, and a, b
/// and c address the matrices their dimensions describe.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn sgemm_(
    transa: *const c_char,
    transb: *const c_char,
    m: *const c_int,
    n: *const c_int,
    k: *const c_int,
    alpha: *const f32,
    a: *const f32,
    lda: *const c_int,
    b: *const f32,
    ldb: *const c_int,
    beta: *const f32,
    c: *mut f32,
    ldc: *const c_int,
) {
    blas_call(|| {
        let trans = |name: &str, p: *const c_char, position: c_int| -> BlasResult<Transpose> {
            // SAFETY: the caller passes NULL or a readable character.
            let ch = unsafe { by_ref(name, p, position)? } as u8;
            match ch.to_ascii_uppercase() {
                b'N' => Ok(Transpose::No),
                b'T' | b'C' => Ok(Transpose::Yes),
                _ => Err((
                    position,
                    Error::invalid(format!("{name} = {:?} is invalid; use 'N', 'T' or 'C'", ch as char)),
                )),
            }
        };
        let ta = trans("transa", transa, 1)?;
        let tb = trans("transb", transb, 2)?;
        // SAFETY: the caller passes NULL or a readable value.
        let (m, n, k) = unsafe { (by_ref("m", m, 3)?, by_ref("n", n, 4)?, by_ref("k", k, 5)?) };
        let pos = Positions { m: 3, n: 4, k: 5, a: 7, lda: 8, b: 9, ldb: 10, c: 12, ldc: 13 };
        // Reference BLAS checks the dimensions before the leading
        // dimensions, and those before anything else.
        at(pos.m, dim("m", m))?;
        at(pos.n, dim("n", n))?;
        at(pos.k, dim("k", k))?;
        // A Fortran caller passes every scalar argument by reference, and
        // `by_ref` rejects NULL before reading.
        // SAFETY: as stated above.
        let lda = unsafe { by_ref("lda", lda, 8)? };
        // SAFETY: as stated above.
        let ldb = unsafe { by_ref("ldb", ldb, 10)? };
        // SAFETY: as stated above.
        let ldc = unsafe { by_ref("ldc", ldc, 13)? };
        // SAFETY: as stated above.
        let alpha = unsafe { by_ref("alpha", alpha, 6)? };
        // SAFETY: as stated above.
        let beta = unsafe { by_ref("beta", beta, 11)? };
        blas_sgemm(&pos, Layout::ColMajor, ta, tb, (m, n, k), alpha, a, lda, b, ldb, beta, c, ldc)
    })
}
