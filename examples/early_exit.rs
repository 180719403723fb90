//! Early-exit decisions for a batch of decoding steps. It generates logits
//! over a 32k vocabulary whose sharpness varies by row, then computes the
//! confidence estimators and decides which rows may stop. It runs under
//! every instruction set this CPU has and prints decisions and timings.

use mlak::{Confidence, ExitThresholds, Isa};
use std::time::Instant;

fn main() -> Result<(), mlak::Error> {
    let (rows, vocab) = (64usize, 32_000usize);
    let mut logits = vec![0.0f32; rows * vocab];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for (i, v) in logits.iter_mut().enumerate() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let noise = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        // Row r has one favoured token whose lead grows with r.
        let (r, col) = (i / vocab, i % vocab);
        *v = 4.0 * noise + if col == r { 0.4 * r as f32 } else { 0.0 };
    }
    let thresholds = ExitThresholds { max_entropy: 2.0, min_max_prob: 0.5, min_margin: 0.2 };
    println!("mlak {} on {} rows x {} logits, best level {}", env!("CARGO_PKG_VERSION"), rows, vocab, mlak::best_isa().name());

    let mut exit = vec![false; rows];
    let mut stats = vec![Confidence::default(); rows];
    for isa in Isa::ALL.into_iter().filter(|&i| mlak::isa_supported(i)) {
        let start = Instant::now();
        let count = mlak::with_isa(isa, || {
            mlak::early_exit(&logits, vocab, rows, vocab, 1.0, &thresholds, &mut exit, Some(&mut stats))
        })??;
        let secs = start.elapsed().as_secs_f64();
        let gbps = (rows * vocab * 4) as f64 / secs / 1e9;
        println!("{:>7}: {count:2} of {rows} rows exit; {:.3} ms, {gbps:.2} GB/s", isa.name(), secs * 1e3);
    }
    println!("row  entropy  max_prob  margin  variance  exit");
    for r in (0..rows).step_by(8) {
        let c = stats[r];
        println!(
            "{r:3}  {:7.3}  {:8.4}  {:6.4}  {:8.3}  {}",
            c.entropy, c.max_prob, c.margin, c.logit_variance, exit[r]
        );
    }
    Ok(())
}
