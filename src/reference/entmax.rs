//! f64 references of sparsemax, entmax-1.5, α-entmax and their backward
//! passes. The forward references sort the row and use the closed forms
//! (or bisection for general α), independent of the kernels' iterations.

/// Returns the row maximum, or `None` when the policy decides the row: a
/// NaN or +inf gives a NaN row, an all -inf (or empty) row gives zeros.
fn policy(x: &[f64]) -> Result<f64, Vec<f64>> {
    if x.iter().any(|v| v.is_nan() || *v == f64::INFINITY) {
        return Err(vec![f64::NAN; x.len()]);
    }
    let max = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
    if max == f64::NEG_INFINITY {
        return Err(vec![0.0; x.len()]);
    }
    Ok(max)
}

/// Returns u = scale·(x − max) sorted in decreasing order, -inf entries
/// dropped.
fn sorted_shifted(x: &[f64], max: f64, scale: f64) -> Vec<f64> {
    let mut u: Vec<f64> = x.iter().filter(|v| v.is_finite()).map(|&v| scale * (v - max)).collect();
    u.sort_by(|a, b| b.total_cmp(a));
    u
}

/// Returns sparsemax(x) in f64 together with its threshold τ in units of
/// x − max.
pub fn sparsemax_with_threshold(x: &[f64]) -> (Vec<f64>, f64) {
    let max = match policy(x) {
        Ok(m) => m,
        Err(row) => return (row, f64::NAN),
    };
    let u = sorted_shifted(x, max, 1.0);
    // The support is the largest k with u_k > (Σ_{j ≤ k} u_j − 1)/k.
    let (mut cum, mut tau) = (0.0, -1.0);
    for (k, &uk) in u.iter().enumerate() {
        cum += uk;
        let t = (cum - 1.0) / (k + 1) as f64;
        if uk > t {
            tau = t;
        }
    }
    (x.iter().map(|&v| (v - max - tau).max(0.0)).collect(), tau)
}

/// Widens a row to f64.
fn wide(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

/// Returns sparsemax(x) in f64.
pub fn sparsemax(x: &[f32]) -> Vec<f64> {
    sparsemax_with_threshold(&wide(x)).0
}

/// Returns entmax15(x) in f64.
pub fn entmax15(x: &[f32]) -> Vec<f64> {
    entmax15_f64(&wide(x))
}

/// Returns α-entmax(x) in f64; see [`alpha_entmax_f64`].
pub fn alpha_entmax(x: &[f32], alpha: f64) -> Vec<f64> {
    alpha_entmax_f64(&wide(x), alpha)
}

/// Returns entmax15(x) = [(x − max)/2 − τ]_+² for an f64 row.
pub fn entmax15_f64(x: &[f64]) -> Vec<f64> {
    let max = match policy(x) {
        Ok(m) => m,
        Err(row) => return row,
    };
    let u = sorted_shifted(x, max, 0.5);
    let (mut s1, mut s2, mut tau) = (0.0, 0.0, -1.0);
    for (k, &uk) in u.iter().enumerate() {
        s1 += uk;
        s2 += uk * uk;
        let kf = (k + 1) as f64;
        let mean = s1 / kf;
        let disc = (1.0 - (s2 - kf * mean * mean)) / kf;
        if disc >= 0.0 {
            let t = mean - disc.sqrt();
            if uk > t {
                tau = t;
            }
        }
    }
    x.iter().map(|&v| ((v - max) * 0.5 - tau).max(0.0).powi(2)).collect()
}

/// Returns α-entmax(x) in f64 for α ≥ 1: softmax at α = 1, else
/// p_i = [1 + a·(x_i − max − c)]_+^(1/a) with a = α − 1 and c found by 200
/// bisection steps on [0, (1 − n^(−a))/a], then divided by the sum.
pub fn alpha_entmax_f64(x: &[f64], alpha: f64) -> Vec<f64> {
    if alpha == 1.0 {
        return softmax_f64(x);
    }
    let max = match policy(x) {
        Ok(m) => m,
        Err(row) => return row,
    };
    let a = alpha - 1.0;
    let eval = |c: f64| -> Vec<f64> {
        x.iter()
            .map(|&v| {
                let base = 1.0 + a * (v - max - c);
                if base > 0.0 {
                    base.powf(1.0 / a)
                } else {
                    0.0
                }
            })
            .collect()
    };
    let (mut lo, mut hi) = (0.0, -(-a * (x.len() as f64).ln()).exp_m1() / a);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if eval(mid).iter().sum::<f64>() > 1.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let p = eval(0.5 * (lo + hi));
    let sum: f64 = p.iter().sum();
    p.into_iter().map(|v| v / sum).collect()
}

/// Returns the α-entmax Jacobian-vector product dx = g·dy − (Σ g·dy / Σ g)·g
/// with g = p^(2−α) (g = 1[p > 0] at α = 2) and the gradient with respect
/// to α, Σ dy_i·∂p_i/∂α.
///
/// With a = α − 1, ℓ = ln p, S = Σ p·ℓ, r = (p^(−a) − 1 + a·ℓ)/a² (its
/// limit ℓ²/2 at a = 0) and R = Σ p·r:
/// ∂p_i/∂α = p_i·(R − r_i + a·(r_i·S − ℓ_i·R)) / Σ g. This is the
/// textbook (ĝ_i·S − p_i·ℓ_i)/a + (p_i − ĝ_i)/a² with ĝ = g/Σg, rearranged
/// so that rounding in p is not amplified by 1/a².
pub fn jvp(p: &[f64], dy: &[f64], alpha: f64) -> (Vec<f64>, f64) {
    let a = alpha - 1.0;
    let g: Vec<f64> = p.iter().map(|&v| if v > 0.0 { v.powf(1.0 - a) } else { 0.0 }).collect();
    let g_sum: f64 = g.iter().sum();
    // Also taken when g_sum is NaN.
    if g_sum.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return (vec![0.0; p.len()], 0.0);
    }
    let mean = g.iter().zip(dy).map(|(g, d)| g * d).sum::<f64>() / g_sum;
    let dx = g.iter().zip(dy).map(|(g, d)| g * (d - mean)).collect();
    let ell: Vec<f64> = p.iter().map(|&v| if v > 0.0 { v.ln() } else { 0.0 }).collect();
    let r: Vec<f64> = ell
        .iter()
        .map(|&l| {
            let t = -a * l;
            if t.abs() < 1e-4 {
                // Taylor series of (e^t − 1 − t)/t², times ℓ².
                l * l * (0.5 + t / 6.0 + t * t / 24.0)
            } else {
                (t.exp_m1() - t) / (a * a)
            }
        })
        .collect();
    let s: f64 = p.iter().zip(&ell).map(|(p, l)| p * l).sum();
    let r_sum: f64 = p.iter().zip(&r).map(|(p, r)| p * r).sum();
    let d_alpha = (0..p.len())
        .filter(|&i| p[i] > 0.0)
        .map(|i| dy[i] * p[i] * (r_sum - r[i] + a * (r[i] * s - ell[i] * r_sum)))
        .sum::<f64>()
        / g_sum;
    (dx, d_alpha)
}

/// Returns softmax(x) for an f64 row, with the same policy.
pub fn softmax_f64(x: &[f64]) -> Vec<f64> {
    let max = match policy(x) {
        Ok(m) => m,
        Err(row) => return row,
    };
    let e: Vec<f64> = x.iter().map(|&v| (v - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}
