//! f64 reference of the general matrix multiply.

/// Returns `alpha·A·B + beta·C` for A m×k, B k×n and C m×n given as
/// closures over (row, column), computed in f64 as a row-major m×n vector.
/// `beta = 0` ignores C entirely (NaN there does not propagate) and
/// `alpha = 0` ignores A and B, matching the kernels' policy.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    n: usize,
    k: usize,
    alpha: f64,
    a: impl Fn(usize, usize) -> f64,
    b: impl Fn(usize, usize) -> f64,
    beta: f64,
    c: impl Fn(usize, usize) -> f64,
) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0;
            if alpha != 0.0 {
                for p in 0..k {
                    acc += a(i, p) * b(p, j);
                }
            }
            let ab = if alpha != 0.0 { alpha * acc } else { 0.0 };
            out[i * n + j] = if beta != 0.0 { ab + beta * c(i, j) } else { ab };
        }
    }
    out
}

/// Returns `Σ_p |A[i, p]|·|B[p, j]|` for every (i, j) as a row-major m×n
/// vector: the scale of the rounding error of each entry of A·B.
pub fn abs_product(
    m: usize,
    n: usize,
    k: usize,
    a: impl Fn(usize, usize) -> f64,
    b: impl Fn(usize, usize) -> f64,
) -> Vec<f64> {
    gemm(m, n, k, 1.0, |i, p| a(i, p).abs(), |p, j| b(p, j).abs(), 0.0, |_, _| 0.0)
}
