//! General matrix multiply: C = α·A·B + β·C over strided f32 matrices.

use crate::error::Result;

/// Computes C = α·A·B + β·C for an m×k matrix A, a k×n matrix B and an m×n
/// matrix C. Element (i, j) of a matrix X sits at `x + i*rs_x + j*cs_x`
/// (strides in elements, any sign). β = 0 never reads C, so NaN in C does
/// not leak; α = 0 skips A·B; k = 0 gives β·C; m = 0 or n = 0 touches
/// nothing.
///
/// # Safety
///
/// Every element addressed by the shapes and strides is valid (readable
/// for A and B, readable and writable for C), and C overlaps neither A nor
/// B nor itself (distinct (i, j) map to distinct addresses).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm_strided(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: *const f32,
    rs_a: isize,
    cs_a: isize,
    b: *const f32,
    rs_b: isize,
    cs_b: isize,
    beta: f32,
    c: *mut f32,
    rs_c: isize,
    cs_c: isize,
) -> Result<()> {
    // NOTE: a plain dot-product loop; correct for every shape and stride but
    // not yet blocked, packed or vectorized.
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f32;
            if alpha != 0.0 {
                for p in 0..k {
                    // SAFETY: (i, p) and (p, j) are inside A and B by the
                    // caller's contract.
                    unsafe {
                        acc += *a.offset(i as isize * rs_a + p as isize * cs_a)
                            * *b.offset(p as isize * rs_b + j as isize * cs_b);
                    }
                }
            }
            // SAFETY: (i, j) is inside C by the caller's contract.
            unsafe {
                let cij = c.offset(i as isize * rs_c + j as isize * cs_c);
                *cij = if beta == 0.0 { alpha * acc } else { alpha * acc + beta * *cij };
            }
        }
    }
    Ok(())
}
