//! Softmax, log-softmax and the confidence estimators at n = 64, 1024 and
//! 32768, single thread, under every level this CPU runs. Throughput is
//! the input bytes read per second (rows · n · 4 bytes), the same measure
//! the peer report uses for PyTorch's softmax.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mlak::{Confidence, Isa};
use std::hint::black_box;

/// Rows per call, chosen so each input is 4 MiB: large enough to amortize
/// call overhead, small enough to stay in this machine's L3 of 32 MiB.
fn rows_for(n: usize) -> usize {
    (1 << 20) / n
}

fn input(rows: usize, n: usize) -> Vec<f32> {
    (0..rows * n).map(|i| ((i * 2_654_435_761) % 1000) as f32 / 100.0 - 5.0).collect()
}

fn bench(c: &mut Criterion) {
    mlak::set_num_threads(1);
    let levels: Vec<Isa> = Isa::ALL.into_iter().filter(|&i| mlak::isa_supported(i)).collect();
    for n in [64usize, 1024, 32768] {
        let rows = rows_for(n);
        let x = input(rows, n);
        let mut y = vec![0.0f32; rows * n];
        let mut stats = vec![Confidence::default(); rows];
        let mut group = c.benchmark_group(format!("softmax_n{n}"));
        group.throughput(Throughput::Bytes((rows * n * 4) as u64));
        group.sample_size(20);
        for &isa in &levels {
            group.bench_function(BenchmarkId::new("softmax", isa.name()), |b| {
                b.iter(|| {
                    mlak::with_isa(isa, || mlak::softmax(black_box(&x), n, &mut y, n, rows, n, 1.0).unwrap()).unwrap()
                })
            });
            group.bench_function(BenchmarkId::new("log_softmax", isa.name()), |b| {
                b.iter(|| {
                    mlak::with_isa(isa, || mlak::log_softmax(black_box(&x), n, &mut y, n, rows, n, 1.0).unwrap())
                        .unwrap()
                })
            });
            group.bench_function(BenchmarkId::new("confidence", isa.name()), |b| {
                b.iter(|| {
                    mlak::with_isa(isa, || mlak::confidence(black_box(&x), n, rows, n, 1.0, &mut stats).unwrap())
                        .unwrap()
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
