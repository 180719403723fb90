//! Throughput of sparsemax, entmax-1.5 and α-entmax next to mlak's own
//! softmax, single-threaded, at the shapes of `benches/entmax_peer.py`.
//!
//! Run with `cargo bench --bench entmax`. Throughput counts the f32 input
//! bytes (rows · n · 4) once, the same unit the peer script prints. Logits
//! are 2·N(0, 1), drawn with a fixed seed.
//! Criterion is an x86_64-only dev-dependency, so elsewhere this is empty.
#![cfg_attr(not(target_arch = "x86_64"), allow(unused))]

#[cfg(target_arch = "x86_64")]
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;

const SHAPES: [(usize, usize); 3] = [(8192, 64), (4096, 1024), (256, 32768)];

/// α of the general α-entmax kernel; 1.5 and 2 would take the exact paths.
const ALPHA: f32 = 1.3;

/// Returns `len` samples of 2·N(0, 1) from a fixed-seed xorshift and the
/// Box-Muller transform.
fn logits(len: usize) -> Vec<f32> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..len)
        .map(|_| {
            let (u, v) = (uniform(), uniform());
            (2.0 * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        })
        .collect()
}

#[cfg(target_arch = "x86_64")]
fn bench(c: &mut Criterion) {
    mlak::set_num_threads(1);
    for (rows, n) in SHAPES {
        let x = logits(rows * n);
        let mut y = vec![0.0f32; rows * n];
        let mut group = c.benchmark_group(format!("entmax/{rows}x{n}"));
        group.throughput(Throughput::Bytes((rows * n * 4) as u64));
        group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
        let id = |name: &str| BenchmarkId::new(name, format!("{rows}x{n}"));
        group.bench_function(id("softmax"), |b| {
            b.iter(|| mlak::softmax(black_box(&x), n, &mut y, n, rows, n, 1.0).unwrap())
        });
        group.bench_function(id("sparsemax"), |b| b.iter(|| mlak::sparsemax(black_box(&x), n, &mut y, n, rows, n).unwrap()));
        group.bench_function(id("entmax15"), |b| b.iter(|| mlak::entmax15(black_box(&x), n, &mut y, n, rows, n).unwrap()));
        group.bench_function(id("alpha_entmax_1.3"), |b| {
            b.iter(|| mlak::alpha_entmax(black_box(&x), n, &mut y, n, rows, n, &[ALPHA]).unwrap())
        });
        group.finish();
    }
}

#[cfg(target_arch = "x86_64")]
criterion_group!(benches, bench);
#[cfg(target_arch = "x86_64")]
criterion_main!(benches);

#[cfg(not(target_arch = "x86_64"))]
fn main() {}
