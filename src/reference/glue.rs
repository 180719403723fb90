//! f64 references of the glue kernels: norms, activations and RoPE.

/// Returns h = x + residual (or x) in f64.
fn sum_row(x: &[f32], residual: Option<&[f32]>) -> Vec<f64> {
    match residual {
        Some(r) => x.iter().zip(r).map(|(&a, &b)| a as f64 + b as f64).collect(),
        None => x.iter().map(|&a| a as f64).collect(),
    }
}

fn affine(v: Option<&[f32]>, i: usize, none: f64) -> f64 {
    v.map_or(none, |v| v[i] as f64)
}

/// Returns LayerNorm of h = x + residual: (h − mean)/√(var + eps)·gamma +
/// beta with the population variance.
pub fn layernorm(x: &[f32], residual: Option<&[f32]>, gamma: Option<&[f32]>, beta: Option<&[f32]>, eps: f64) -> Vec<f64> {
    let h = sum_row(x, residual);
    let n = h.len() as f64;
    let mean = h.iter().sum::<f64>() / n;
    let var = h.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let rstd = 1.0 / (var + eps).sqrt();
    h.iter().enumerate().map(|(i, v)| (v - mean) * rstd * affine(gamma, i, 1.0) + affine(beta, i, 0.0)).collect()
}

/// Returns RMSNorm of h = x + residual: h/√(mean(h²) + eps)·gamma.
pub fn rmsnorm(x: &[f32], residual: Option<&[f32]>, gamma: Option<&[f32]>, eps: f64) -> Vec<f64> {
    let h = sum_row(x, residual);
    let ms = h.iter().map(|v| v * v).sum::<f64>() / h.len() as f64;
    let rstd = 1.0 / (ms + eps).sqrt();
    h.iter().enumerate().map(|(i, v)| v * rstd * affine(gamma, i, 1.0)).collect()
}

// The C math library, which std links on every supported target, has erf
// and erfc accurate to about 1 ulp of f64; Rust's std has neither.
mod libm {
    extern "C" {
        pub fn erf(x: f64) -> f64;
        pub fn erfc(x: f64) -> f64;
    }
}

/// erf in f64, from the C math library.
pub fn erf(x: f64) -> f64 {
    // SAFETY: erf is a pure C math function with no preconditions.
    unsafe { libm::erf(x) }
}

/// erfc in f64, from the C math library.
pub fn erfc(x: f64) -> f64 {
    // SAFETY: erfc is a pure C math function with no preconditions.
    unsafe { libm::erfc(x) }
}

/// GELU, erf form: x·Φ(x) = x·erfc(−x/√2)/2, with GELU(−inf) = 0.
pub fn gelu_erf(x: f32) -> f64 {
    if x == f32::NEG_INFINITY {
        return 0.0;
    }
    let x = x as f64;
    x * 0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// GELU, tanh form: x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))/2, evaluated as
/// x·sigmoid(2u), with GELU(−inf) = 0.
pub fn gelu_tanh(x: f32) -> f64 {
    if x == f32::NEG_INFINITY {
        return 0.0;
    }
    let x = x as f64;
    let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
    x / (1.0 + (-2.0 * u).exp())
}

/// SiLU: x·sigmoid(x), with SiLU(−inf) = 0.
pub fn silu(x: f32) -> f64 {
    if x == f32::NEG_INFINITY {
        return 0.0;
    }
    let x = x as f64;
    x / (1.0 + (-x).exp())
}

/// Returns one RoPE row (heads·head_dim values) at position `pos`; pairs
/// as described by `mlak::RopeLayout`, angles pos·base^(−2i/rot).
pub fn rope(row: &[f32], heads: usize, head_dim: usize, rot: usize, interleaved: bool, base: f64, pos: f64) -> Vec<f64> {
    let mut out: Vec<f64> = row.iter().map(|&v| v as f64).collect();
    for h in 0..heads {
        let b = h * head_dim;
        for i in 0..rot / 2 {
            let theta = pos * base.powf(-2.0 * i as f64 / rot as f64);
            let (s, c) = theta.sin_cos();
            let (ja, jb) = if interleaved { (b + 2 * i, b + 2 * i + 1) } else { (b + i, b + rot / 2 + i) };
            let (x1, x2) = (row[ja] as f64, row[jb] as f64);
            out[ja] = x1 * c - x2 * s;
            out[jb] = x2 * c + x1 * s;
        }
    }
    out
}
