//! Mixture-of-experts layer, gather and combine, single thread, at the
//! best level this CPU runs.
//!
//! The layer is DeepSeek-V3 shaped and scaled down: 64 experts, top-6,
//! 8 groups with 3 kept, d = 1024, expert FFN width 512, no shared experts,
//! at T = 1 (decode) and T = 512 (prefill), with f32 and bf16 weights.
//! `benches/moe_peer.py` times the same layer in PyTorch.
//!
//! Gather and combine report bytes read plus bytes written per second, at
//! T = 512, k = 6, d = 1024, next to a `copy_from_slice` (memcpy) of the
//! gather's byte count measured the same way.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use half::bf16;
use mlak::{FfnWeights, GroupedRouting, MoeLayer, MoeLayout, Router, Weights};
use std::hint::black_box;

const EXPERTS: usize = 64;
const TOP_K: usize = 6;
const GROUPS: usize = 8;
const TOPK_GROUP: usize = 3;
const D: usize = 1024;
const WIDTH: usize = 512;

/// Deterministic values in [-scale, scale), cheap enough for 10^8 weights.
fn values(n: usize, seed: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|i| ((i.wrapping_mul(2_654_435_761).wrapping_add(seed * 97)) % 2001) as f32 / 1000.0 - 1.0).map(|v| v * scale).collect()
}

fn bench_layer(c: &mut Criterion) {
    mlak::set_num_threads(1);
    let router_weight = values(EXPERTS * D, 1, 0.05);
    let bias = values(EXPERTS, 2, 0.01);
    let n = EXPERTS * WIDTH * D;
    let (gate, up, down) = (values(n, 3, 0.03), values(n, 4, 0.03), values(n, 5, 0.04));
    let to_bf16 = |v: &[f32]| v.iter().map(|&x| bf16::from_f32(x)).collect::<Vec<bf16>>();
    let (gate16, up16, down16) = (to_bf16(&gate), to_bf16(&up), to_bf16(&down));
    let routing = GroupedRouting { bias: &bias, groups: GROUPS, topk_group: TOPK_GROUP, k: TOP_K, routed_scaling_factor: 2.5 };
    let layer_f32 = MoeLayer {
        d: D,
        experts: EXPERTS,
        router_weight: &router_weight,
        router: Router::GroupedSigmoid(routing),
        expert_ffn: FfnWeights { gate: Weights::F32(&gate), up: Weights::F32(&up), down: Weights::F32(&down), width: WIDTH },
        shared_ffn: None,
    };
    let layer_bf16 = MoeLayer {
        expert_ffn: FfnWeights {
            gate: Weights::Bf16(&gate16),
            up: Weights::Bf16(&up16),
            down: Weights::Bf16(&down16),
            width: WIDTH,
        },
        ..layer_f32
    };
    let mut group = c.benchmark_group("moe_layer");
    group.sample_size(10);
    for tokens in [1usize, 512] {
        let x = values(tokens * D, 6, 1.0);
        let mut out = vec![0.0f32; tokens * D];
        for (name, layer) in [("f32", &layer_f32), ("bf16", &layer_bf16)] {
            group.bench_function(BenchmarkId::new(name, format!("T{tokens}")), |b| {
                b.iter(|| mlak::moe_layer(layer, black_box(&x), tokens, &mut out).unwrap())
            });
        }
    }
    group.finish();
}

fn bench_gather_combine(c: &mut Criterion) {
    mlak::set_num_threads(1);
    let tokens = 512;
    let logits = values(tokens * EXPERTS, 7, 3.0);
    let mut ids = vec![0i32; tokens * TOP_K];
    let mut weights = vec![0.0f32; tokens * TOP_K];
    mlak::route_softmax_topk(&logits, tokens, EXPERTS, TOP_K, true, &mut ids, &mut weights, None).unwrap();
    let layout = MoeLayout::new(&ids, tokens, TOP_K, EXPERTS, 1).unwrap();
    let slots = layout.num_slots();
    let x = values(tokens * D, 8, 1.0);
    let x16: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
    let mut xs = vec![0.0f32; slots * D];
    let mut xs16 = vec![bf16::ZERO; slots * D];
    let ys = values(slots * D, 9, 1.0);
    let mut out = vec![0.0f32; tokens * D];
    let copy_src = values(slots * D, 10, 1.0);
    let mut copy_dst = vec![0.0f32; slots * D];

    let mut group = c.benchmark_group("moe_data_movement");
    group.sample_size(30);
    let gather_bytes = (2 * slots * D * 4) as u64;
    group.throughput(Throughput::Bytes(gather_bytes));
    group.bench_function("memcpy_f32", |b| b.iter(|| copy_dst.copy_from_slice(black_box(&copy_src))));
    group.bench_function("gather_f32", |b| {
        b.iter(|| mlak::moe_gather(black_box(&x), D, D, &layout, &mut xs, D).unwrap())
    });
    group.throughput(Throughput::Bytes(gather_bytes / 2));
    group.bench_function("memcpy_bf16", |b| {
        b.iter(|| copy_dst[..slots * D / 2].copy_from_slice(black_box(&copy_src[..slots * D / 2])))
    });
    group.bench_function("gather_bf16", |b| {
        b.iter(|| mlak::moe_gather(black_box(&x16), D, D, &layout, &mut xs16, D).unwrap())
    });
    group.throughput(Throughput::Bytes(((slots + tokens) * D * 4) as u64));
    group.bench_function("combine_f32", |b| {
        b.iter(|| mlak::moe_combine(black_box(&ys), D, D, &layout, &weights, &mut out, D, false).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_gather_combine, bench_layer);
criterion_main!(benches);
