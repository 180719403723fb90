//! Single-thread GEMM benchmarks: mlak f32 and bf16 against the `gemm`
//! crate (f32), on squares, decode shapes and MoE expert shapes.
//!
//! Before the Criterion groups, a summary pass times every shape with a
//! best-of-N loop and prints GFLOP/s, the fraction of the register-only FMA
//! peak measured by `fma_peak_gflops`, and the ratio to the peer. Run with
//! `cargo bench --bench gemm`; `cargo bench --bench gemm -- --summary-only`
//! skips the Criterion groups.

use criterion::{BenchmarkId, Criterion, Throughput};
use half::bf16;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// A product shape: C (m×n) = A (m×k) · B (k×n), all row-major.
#[derive(Clone, Copy)]
struct Shape {
    name: &'static str,
    m: usize,
    n: usize,
    k: usize,
}

const fn sq(name: &'static str, s: usize) -> Shape {
    Shape { name, m: s, n: s, k: s }
}

const SHAPES: &[Shape] = &[
    sq("square", 256),
    sq("square", 512),
    sq("square", 1024),
    sq("square", 2048),
    sq("square", 4096),
    Shape { name: "decode", m: 1, n: 4096, k: 4096 },
    Shape { name: "decode", m: 4, n: 4096, k: 4096 },
    Shape { name: "decode", m: 16, n: 4096, k: 4096 },
    Shape { name: "moe", m: 64, n: 512, k: 1024 },
    Shape { name: "moe", m: 64, n: 1024, k: 4096 },
];

fn flops(s: Shape) -> f64 {
    2.0 * (s.m * s.n * s.k) as f64
}

/// Returns the single-core f32 FMA peak in GFLOP/s: independent register
/// FMA chains with no memory traffic, on the widest vectors the CPU has.
fn fma_peak_gflops() -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F was detected.
            return unsafe { fma_peak_avx512() };
        }
        if std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: AVX2 and FMA were detected.
            return unsafe { fma_peak_avx2() };
        }
    }
    f64::NAN
}

macro_rules! fma_probe {
    ($name:ident, $feature:literal, $vec:ty, $set1:ident, $fma:ident, $lanes:expr) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        unsafe fn $name() -> f64 {
            use std::arch::x86_64::*;
            const CHAINS: usize = 12;
            const ITERS: usize = 100_000;
            // Short repetitions, best of many: on a shared machine some of
            // them run without being preempted.
            let mut best = 0.0f64;
            for _ in 0..200 {
                let mut acc: [$vec; CHAINS] = [$set1(0.0); CHAINS];
                let x = $set1(black_box(0.999_999));
                let y = $set1(black_box(1e-7));
                let t = Instant::now();
                for _ in 0..ITERS {
                    for a in acc.iter_mut() {
                        *a = $fma(*a, x, y);
                    }
                }
                let dt = t.elapsed().as_secs_f64();
                black_box(acc);
                best = best.max((2 * $lanes * CHAINS * ITERS) as f64 / dt / 1e9);
            }
            best
        }
    };
}

fma_probe!(fma_peak_avx512, "avx512f", __m512, _mm512_set1_ps, _mm512_fmadd_ps, 16);
fma_probe!(fma_peak_avx2, "avx2,fma", __m256, _mm256_set1_ps, _mm256_fmadd_ps, 8);

/// Inputs of one shape, in f32 and bf16.
struct Data {
    a: Vec<f32>,
    b: Vec<f32>,
    a16: Vec<bf16>,
    b16: Vec<bf16>,
    c: Vec<f32>,
}

fn data(s: Shape) -> Data {
    let mut state = 0x9E37_79B9u32;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
    };
    let a: Vec<f32> = (0..s.m * s.k).map(|_| next()).collect();
    let b: Vec<f32> = (0..s.k * s.n).map(|_| next()).collect();
    Data {
        a16: a.iter().map(|&x| bf16::from_f32(x)).collect(),
        b16: b.iter().map(|&x| bf16::from_f32(x)).collect(),
        a,
        b,
        c: vec![0.0; s.m * s.n],
    }
}

fn run_mlak(s: Shape, d: &mut Data) {
    mlak::sgemm_strided(s.m, s.n, s.k, 1.0, &d.a, s.k, 1, &d.b, s.n, 1, 0.0, &mut d.c, s.n, 1).unwrap();
}

fn run_mlak_bf16(s: Shape, d: &mut Data) {
    mlak::gemm_mixed(s.m, s.n, s.k, 1.0, &d.a16, s.k, 1, &d.b16, s.n, 1, 0.0, &mut d.c, s.n, 1).unwrap();
}

fn run_peer(s: Shape, d: &mut Data) {
    // SAFETY: the buffers hold the row-major matrices of the shape; the
    // crate's dst = alpha·dst + beta·lhs·rhs, so read_dst = false with
    // beta = 1 is C = A·B.
    unsafe {
        gemm::gemm(
            s.m,
            s.n,
            s.k,
            d.c.as_mut_ptr(),
            1,
            s.n as isize,
            false,
            d.a.as_ptr(),
            1,
            s.k as isize,
            d.b.as_ptr(),
            1,
            s.n as isize,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// Returns the best time of `f` over repetitions filling about `budget`.
fn best_time(budget: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut best = f64::INFINITY;
    let mut reps = 0;
    while reps < 3 || (start.elapsed() < budget && reps < 1000) {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
        reps += 1;
    }
    best
}

fn summary(peak: f64) {
    println!("single thread; FMA peak {peak:.1} GFLOP/s; isa {}", mlak::best_isa().name());
    println!(
        "{:<8} {:>5} {:>5} {:>5} | {:>8} {:>6} | {:>8} {:>6} | {:>8} {:>6}",
        "shape", "m", "n", "k", "mlak", "%peak", "gemm-rs", "ratio", "bf16", "x f32"
    );
    for &s in SHAPES {
        let mut d = data(s);
        let budget = Duration::from_millis(if s.m * s.n * s.k > 1 << 30 { 3000 } else { 1000 });
        let t_mlak = best_time(budget, || run_mlak(s, &mut d));
        let t_peer = best_time(budget, || run_peer(s, &mut d));
        let t_bf16 = best_time(budget, || run_mlak_bf16(s, &mut d));
        let g = |t: f64| flops(s) / t / 1e9;
        println!(
            "{:<8} {:>5} {:>5} {:>5} | {:>8.1} {:>5.0}% | {:>8.1} {:>6.2} | {:>8.1} {:>6.2}",
            s.name,
            s.m,
            s.n,
            s.k,
            g(t_mlak),
            100.0 * g(t_mlak) / peak,
            g(t_peer),
            t_peer / t_mlak,
            g(t_bf16),
            t_mlak / t_bf16,
        );
    }
}

fn criterion_groups(c: &mut Criterion) {
    for &s in SHAPES {
        let mut group = c.benchmark_group(format!("gemm_{}", s.name));
        group.throughput(Throughput::Elements(flops(s) as u64));
        let big = s.m * s.n * s.k >= 1 << 30;
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(if big { 8 } else { 3 }));
        group.warm_up_time(Duration::from_millis(500));
        let id = format!("{}x{}x{}", s.m, s.n, s.k);
        let mut d = data(s);
        group.bench_function(BenchmarkId::new("mlak_f32", &id), |bench| bench.iter(|| run_mlak(s, &mut d)));
        group.bench_function(BenchmarkId::new("gemm_crate_f32", &id), |bench| bench.iter(|| run_peer(s, &mut d)));
        group.bench_function(BenchmarkId::new("mlak_bf16", &id), |bench| bench.iter(|| run_mlak_bf16(s, &mut d)));
        group.finish();
    }
}

fn main() {
    mlak::set_num_threads(1);
    let peak = fma_peak_gflops();
    summary(peak);
    if std::env::args().any(|a| a == "--summary-only") {
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    criterion_groups(&mut c);
    c.final_summary();
}
