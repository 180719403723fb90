//! f64 references of softmax, log-softmax and the confidence estimators.

/// Returns softmax(x · inv_t) in f64, following the kernels' non-finite
/// policy.
pub fn softmax(x: &[f32], inv_t: f64) -> Vec<f64> {
    match normalizer(x, inv_t) {
        Norm::Nan => vec![f64::NAN; x.len()],
        Norm::Empty => vec![0.0; x.len()],
        Norm::Finite { max, sum } => x.iter().map(|&v| ((v as f64 - max) * inv_t).exp() / sum).collect(),
    }
}

/// Returns log_softmax(x · inv_t) in f64, following the kernels' policy.
pub fn log_softmax(x: &[f32], inv_t: f64) -> Vec<f64> {
    match normalizer(x, inv_t) {
        Norm::Nan => vec![f64::NAN; x.len()],
        Norm::Empty => vec![f64::NEG_INFINITY; x.len()],
        Norm::Finite { max, sum } => x.iter().map(|&v| (v as f64 - max) * inv_t - sum.ln()).collect(),
    }
}

enum Norm {
    Nan,
    Empty,
    Finite { max: f64, sum: f64 },
}

fn normalizer(x: &[f32], inv_t: f64) -> Norm {
    if x.iter().any(|v| v.is_nan() || *v == f32::INFINITY) {
        return Norm::Nan;
    }
    let max = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    if max == f64::NEG_INFINITY {
        return Norm::Empty;
    }
    let sum = x.iter().map(|&v| ((v as f64 - max) * inv_t).exp()).sum();
    Norm::Finite { max, sum }
}

/// Confidence statistics in f64; fields as in `mlak::Confidence`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Confidence {
    pub entropy: f64,
    pub max_prob: f64,
    pub margin: f64,
    pub logit_variance: f64,
}

/// Returns the confidence statistics of one row, following the kernels'
/// policy.
pub fn confidence(x: &[f32], inv_t: f64) -> Confidence {
    let nan = Confidence { entropy: f64::NAN, max_prob: f64::NAN, margin: f64::NAN, logit_variance: f64::NAN };
    if x.iter().any(|v| v.is_nan()) {
        return nan;
    }
    let max = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let min = x.iter().fold(f64::INFINITY, |m, &v| m.min(v as f64));
    if max == f64::NEG_INFINITY {
        return Confidence { entropy: 0.0, max_prob: 0.0, margin: 0.0, logit_variance: 0.0 };
    }
    let logit_variance = if max.is_infinite() || min.is_infinite() {
        if max == min {
            0.0
        } else {
            f64::INFINITY
        }
    } else {
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / x.len() as f64;
        x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / x.len() as f64
    };
    if max == f64::INFINITY {
        return Confidence { logit_variance, ..nan };
    }
    let p = softmax(x, inv_t);
    let entropy = -p.iter().filter(|&&q| q > 0.0).map(|&q| q * q.ln()).sum::<f64>();
    let mut sorted = p.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let max_prob = sorted[0];
    let margin = max_prob - sorted.get(1).copied().unwrap_or(0.0);
    Confidence { entropy, max_prob, margin, logit_variance }
}
