//! f64 reference of fused attention: the full score row, then softmax and
//! the weighted sum of V, with the masks and modifiers of `mlak::attention`.

use crate::attention::{AttentionArgs, KvSlice};

/// Outputs of [`attention`]: `o` is contiguous `[B, Hq, Lq, Dv]` and `lse`
/// contiguous `[B, Hq, Lq]`.
#[derive(Clone, Debug)]
pub struct AttentionOutput {
    pub o: Vec<f64>,
    pub lse: Vec<f64>,
}

fn kv_value(s: &KvSlice, i: usize) -> f64 {
    match s {
        KvSlice::F32(x) => x[i] as f64,
        KvSlice::F16(x) => x[i].to_f64(),
        KvSlice::Bf16(x) => x[i].to_f64(),
    }
}

/// Computes attention in f64 from the same arguments as
/// `mlak::attention`. A row with no unmasked key gives zeros and lse −inf;
/// a NaN score gives a NaN row and lse; masked keys are never read.
pub fn attention(args: &AttentionArgs) -> AttentionOutput {
    let sh = args.shape;
    let opt = args.options;
    let group = sh.q_heads / sh.kv_heads.max(1);
    let (qs, ks, vs, bs) = (args.q_strides, args.k_strides, args.v_strides, args.bias_strides);
    let mut o = vec![0.0f64; sh.batch * sh.q_heads * sh.q_len * sh.v_head_dim];
    let mut lse = vec![f64::NEG_INFINITY; sh.batch * sh.q_heads * sh.q_len];
    for b in 0..sh.batch {
        let kv_len = args.kv_lengths.map_or(sh.kv_len, |l| l[b]);
        for h in 0..sh.q_heads {
            let kvh = h / group;
            for i in 0..sh.q_len {
                let row = (b * sh.q_heads + h) * sh.q_len + i;
                let pos = kv_len as i64 - sh.q_len as i64 + i as i64 + opt.position_offset;
                let mut keys = Vec::new();
                let mut scores = Vec::new();
                for j in 0..kv_len {
                    let jj = j as i64;
                    if opt.causal && jj > pos {
                        continue;
                    }
                    if opt.window > 0 {
                        let w = opt.window as i64;
                        if pos - jj >= w || (!opt.causal && jj - pos >= w) {
                            continue;
                        }
                    }
                    let mut dot = 0.0f64;
                    for d in 0..sh.head_dim {
                        let q = args.q[b * qs[0] + h * qs[1] + i * qs[2] + d] as f64;
                        let k = kv_value(&args.k, b * ks[0] + kvh * ks[1] + j * ks[2] + d);
                        dot += q * k;
                    }
                    let mut s = opt.scale as f64 * dot;
                    if opt.softcap > 0.0 {
                        let c = opt.softcap as f64;
                        s = c * (s / c).tanh();
                    }
                    if let Some(bias) = args.bias {
                        s += bias[b * bs[0] + h * bs[1] + i * bs[2] + j * bs[3]] as f64;
                    }
                    if let Some(slopes) = args.alibi_slopes {
                        s -= slopes[h] as f64 * (pos - jj).abs() as f64;
                    }
                    keys.push(j);
                    scores.push(s);
                }
                let out = &mut o[row * sh.v_head_dim..(row + 1) * sh.v_head_dim];
                if scores.is_empty() {
                    continue;
                }
                if scores.iter().any(|s| s.is_nan()) {
                    out.fill(f64::NAN);
                    lse[row] = f64::NAN;
                    continue;
                }
                let max = scores.iter().fold(f64::NEG_INFINITY, |m, &s| m.max(s));
                let weights: Vec<f64> = scores.iter().map(|&s| (s - max).exp()).collect();
                let sum: f64 = weights.iter().sum();
                lse[row] = max + sum.ln();
                for (&j, &w) in keys.iter().zip(&weights) {
                    for (d, x) in out.iter_mut().enumerate() {
                        let v = kv_value(&args.v, b * vs[0] + kvh * vs[1] + j * vs[2] + d);
                        *x += w / sum * v;
                    }
                }
            }
        }
    }
    AttentionOutput { o, lse }
}
