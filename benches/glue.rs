//! Glue kernels at BERT-base and Llama-like widths, single thread, under
//! every level this CPU runs, next to a plain Rust loop (auto-vectorized by
//! rustc at opt-level 3 for the baseline x86_64 target, i.e. SSE2) as the
//! peer. Throughput is the input bytes read per second (rows · n · 4).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mlak::{Activation, Isa, NormParams, RopeLayout, RopeParams};
use std::hint::black_box;

/// Rows per call, chosen so each input is 4 MiB: large enough to amortize
/// call overhead, small enough to stay in this machine's L3 of 32 MiB.
fn rows_for(n: usize) -> usize {
    (1 << 20) / n
}

fn input(len: usize) -> Vec<f32> {
    (0..len).map(|i| ((i * 2_654_435_761) % 1000) as f32 / 100.0 - 5.0).collect()
}

/// Peer LayerNorm: two-pass f32 loops, as a straightforward Rust port would
/// write them.
fn layernorm_plain(x: &[f32], y: &mut [f32], n: usize, gamma: &[f32], beta: &[f32]) {
    for (xr, yr) in x.chunks_exact(n).zip(y.chunks_exact_mut(n)) {
        let mean = xr.iter().sum::<f32>() / n as f32;
        let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n as f32;
        let rstd = 1.0 / (var + 1e-5).sqrt();
        for i in 0..n {
            yr[i] = (xr[i] - mean) * rstd * gamma[i] + beta[i];
        }
    }
}

/// Peer GELU (tanh form) with std's scalar tanh.
fn gelu_tanh_plain(x: &[f32], y: &mut [f32]) {
    for (v, o) in x.iter().zip(y) {
        *o = 0.5 * v * (1.0 + (0.797_884_6 * (v + 0.044_715 * v * v * v)).tanh());
    }
}

fn bench(c: &mut Criterion) {
    mlak::set_num_threads(1);
    let levels: Vec<Isa> = Isa::ALL.into_iter().filter(|&i| mlak::isa_supported(i)).collect();
    for n in [768usize, 4096] {
        let rows = rows_for(n);
        let x = input(rows * n);
        let gamma = input(n);
        let beta = input(n);
        let mut y = vec![0.0f32; rows * n];
        let mut group = c.benchmark_group(format!("glue_n{n}"));
        group.throughput(Throughput::Bytes((rows * n * 4) as u64));
        group.sample_size(20);
        group.bench_function(BenchmarkId::new("layernorm", "plain_rust"), |b| {
            b.iter(|| layernorm_plain(black_box(&x), &mut y, n, &gamma, &beta))
        });
        group.bench_function(BenchmarkId::new("gelu_tanh", "plain_rust"), |b| {
            b.iter(|| gelu_tanh_plain(black_box(&x), &mut y))
        });
        let params = NormParams { gamma: Some(&gamma), beta: Some(&beta), eps: 1e-5 };
        let rope = RopeParams {
            layout: RopeLayout::HalfSplit,
            heads: n / 128,
            head_dim: 128,
            rotary_dim: 128,
            base: 10000.0,
            position_offset: 0,
        };
        for &isa in &levels {
            let on = |f: &mut dyn FnMut()| mlak::with_isa(isa, f).unwrap();
            group.bench_function(BenchmarkId::new("layernorm", isa.name()), |b| {
                b.iter(|| on(&mut || mlak::layernorm(black_box(&x), n, &mut y, n, rows, n, &params).unwrap()))
            });
            group.bench_function(BenchmarkId::new("rmsnorm", isa.name()), |b| {
                let p = NormParams { beta: None, ..params };
                b.iter(|| on(&mut || mlak::rmsnorm(black_box(&x), n, &mut y, n, rows, n, &p).unwrap()))
            });
            for (name, act) in [("gelu_erf", Activation::GeluErf), ("gelu_tanh", Activation::GeluTanh), ("silu", Activation::Silu)] {
                group.bench_function(BenchmarkId::new(name, isa.name()), |b| {
                    b.iter(|| on(&mut || mlak::activate(act, black_box(&x), n, &mut y, n, rows, n).unwrap()))
                });
            }
            group.bench_function(BenchmarkId::new("rope_half", isa.name()), |b| {
                b.iter(|| on(&mut || mlak::rope(black_box(&x), n, &mut y, n, rows, &rope, None).unwrap()))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
