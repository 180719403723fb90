//! Fused attention throughput on one thread: prefill in GFLOP/s (criterion
//! reports FLOPs as elements per second) and decode in bytes of K and V
//! read per second, next to the single-core read bandwidth measured in the
//! same run. The PyTorch peer is `benches/attention_peer.py`.
//!
//! FLOPs count 4·D per unmasked (query, key) pair (2·D for Q·Kᵀ and 2·D
//! for P·V), so a causal square call counts half of the full matrix.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use half::f16;
use mlak::{AttentionArgs, AttentionOptions, AttentionShape, KvSlice};
use std::hint::black_box;
use std::time::Duration;

fn data(n: usize, seed: u32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

fn shape(q_heads: usize, kv_heads: usize, q_len: usize, kv_len: usize, d: usize) -> AttentionShape {
    AttentionShape { batch: 1, q_heads, kv_heads, q_len, kv_len, head_dim: d, v_head_dim: d }
}

fn prefill(c: &mut Criterion) {
    mlak::set_num_threads(1);
    let mut group = c.benchmark_group("attention_prefill");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(8));
    for (h, l, d, causal) in [(32, 2048, 128, true), (12, 512, 64, false)] {
        let sh = shape(h, h, l, l, d);
        let q = data(h * l * d, 1);
        let k = data(h * l * d, 2);
        let v = data(h * l * d, 3);
        let mut o = vec![0.0f32; h * l * d];
        let mut args = AttentionArgs::contiguous(sh, &q, KvSlice::F32(&k), KvSlice::F32(&v));
        args.options = AttentionOptions { scale: 1.0 / (d as f32).sqrt(), causal, ..AttentionOptions::default() };
        let pairs = if causal { l * (l + 1) / 2 } else { l * l };
        group.throughput(Throughput::Elements((4 * d * pairs * h) as u64));
        let id = format!("H{h}_L{l}_D{d}{}", if causal { "_causal" } else { "" });
        let strides = mlak::contiguous_strides([1, h, l, d]);
        group.bench_function(id, |b| b.iter(|| mlak::attention(black_box(&args), &mut o, strides, None).unwrap()));
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    mlak::set_num_threads(1);
    let (hq, hkv, d) = (32, 8, 128);
    let mut group = c.benchmark_group("attention_decode");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    for lkv in [2048, 8192, 32768] {
        let sh = shape(hq, hkv, 1, lkv, d);
        let q = data(hq * d, 4);
        let k = data(hkv * lkv * d, 5);
        let v = data(hkv * lkv * d, 6);
        let k16: Vec<f16> = k.iter().map(|&x| f16::from_f32(x)).collect();
        let v16: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
        let mut o = vec![0.0f32; hq * d];
        let strides = mlak::contiguous_strides([1, hq, 1, d]);
        let opts = AttentionOptions { scale: 1.0 / (d as f32).sqrt(), causal: true, ..AttentionOptions::default() };
        for (name, kk, vv, bytes) in
            [("f32", KvSlice::F32(&k), KvSlice::F32(&v), 4), ("f16", KvSlice::F16(&k16), KvSlice::F16(&v16), 2)]
        {
            let mut args = AttentionArgs::contiguous(sh, &q, kk, vv);
            args.options = opts;
            group.throughput(Throughput::Bytes((2 * hkv * lkv * d * bytes) as u64));
            group.bench_function(BenchmarkId::new(name, lkv), |b| {
                b.iter(|| mlak::attention(black_box(&args), &mut o, strides, None).unwrap())
            });
        }
    }
    group.finish();
}

/// Single-core read bandwidth: a sum over 512 MiB of f32, far beyond any
/// cache, in sixteen independent lanes so the loop is not latency bound.
/// Each group of four 64 KiB chunks is read as four streams in lockstep,
/// since one core reads several streams faster than one (the peer report's
/// ceiling takes the best of 1 to 8).
fn read_bandwidth(c: &mut Criterion) {
    const CHUNK: usize = 16 << 10;
    let n = 128 << 20;
    let x = data(n, 7);
    let mut group = c.benchmark_group("read_bandwidth");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Bytes((n * 4) as u64));
    group.bench_function("sum_512MiB", |b| {
        b.iter(|| {
            let mut acc = [0.0f32; 16];
            for g in black_box(&x).chunks_exact(4 * CHUNK) {
                for i in (0..CHUNK).step_by(16) {
                    for s in 0..4 {
                        let line = &g[s * CHUNK + i..s * CHUNK + i + 16];
                        for (a, &v) in acc.iter_mut().zip(line) {
                            *a += v;
                        }
                    }
                }
            }
            acc.iter().sum::<f32>()
        })
    });
    group.finish();
}

criterion_group!(benches, read_bandwidth, decode, prefill);
criterion_main!(benches);
