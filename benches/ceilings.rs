//! Measures this machine's ceilings for the peer report: the f32 FMA peak
//! and the bf16 dot-product peak from register-only loops, and the
//! streaming read bandwidth of one core and of all cores. Prints one JSON
//! object on stdout. Run with `cargo bench --bench ceilings`, or with
//! `cargo bench --bench ceilings -- --read-only` for the read bandwidth
//! alone, which the peer report measures again next to the attention
//! decode results.
//!
//! One core reads several sequential streams at once faster than one,
//! probably because the hardware prefetcher tracks each stream separately,
//! and software prefetch ahead of the loads can add more. So the read
//! ceiling is the best of 1, 2, 4 and 8 streams read in lockstep, each
//! without software prefetch, with requests 1, 4 and 16 KiB ahead into L1,
//! and 4 and 16 KiB ahead into L2. The JSON names the stream count, the
//! distance and the cache level that reached it. On one Zen 3 core, 4
//! streams read about 1.25x faster than 1. On one Zen 5 core, f32 attention
//! decode with its prefetch read up to 17 % more than the best plain loads,
//! which is why the probe tries prefetch too. Attention decode requests
//! into L2 on Intel CPUs, so the probe tries that hint as well.

use std::time::Instant;

const ACCUMULATORS: usize = 12;

/// A read probe: sums a slice read as a number of streams, with software
/// prefetch a number of bytes ahead, into L2 when the flag is set and
/// else into L1.
type ReadProbe = fn(&[f32], usize, usize, bool) -> f32;

/// Stream counts the read probe tries.
const STREAMS: [usize; 4] = [1, 2, 4, 8];

/// Software prefetch distances the read probe tries, in bytes ahead of
/// the loads of each stream (0 requests nothing), and whether they go
/// into L2 rather than L1.
const PREFETCH: [(usize, bool); 6] =
    [(0, false), (1 << 10, false), (4 << 10, false), (16 << 10, false), (4 << 10, true), (16 << 10, true)];

/// Calls the read probe `$read::<N>` on `$data`, with N the stream count
/// `$n`, one of [`STREAMS`].
macro_rules! with_streams {
    ($module:ident::$read:ident, $data:expr, $n:expr, $ahead:expr, $l2:expr) => {
        match $n {
            1 => $module::$read::<1>($data, $ahead, $l2),
            2 => $module::$read::<2>($data, $ahead, $l2),
            4 => $module::$read::<4>($data, $ahead, $l2),
            _ => $module::$read::<8>($data, $ahead, $l2),
        }
    };
}

/// Runs `f` `repeats` times and returns the best wall time in seconds.
fn best_of(repeats: usize, mut f: impl FnMut()) -> f64 {
    (0..repeats)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::ACCUMULATORS;
    use std::arch::x86_64::*;

    /// Issues `iters` rounds of 12 independent 16-lane FMAs and returns the
    /// lane sum, so the loop cannot be removed. 12 chains cover a 4-cycle
    /// FMA latency on 2 pipes with room to spare.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma_avx512(iters: usize) -> f32 {
        let a = _mm512_set1_ps(0.999_999);
        let b = _mm512_set1_ps(1e-7);
        let mut acc = [_mm512_set1_ps(1.0); ACCUMULATORS];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_fmadd_ps(*v, a, b);
            }
        }
        acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
    }

    /// As `fma_avx512` with 8-lane AVX2 FMAs.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma_avx2(iters: usize) -> f32 {
        let a = _mm256_set1_ps(0.999_999);
        let b = _mm256_set1_ps(1e-7);
        let mut acc = [_mm256_set1_ps(1.0); ACCUMULATORS];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm256_fmadd_ps(*v, a, b);
            }
        }
        sum_lanes_avx2(&acc)
    }

    /// Issues `iters` rounds of 12 independent `vdpbf16ps`, each 32 bf16
    /// multiply-adds into 16 f32 lanes.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn dpbf16_avx512(iters: usize) -> f32 {
        let a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5), _mm512_set1_ps(0.25));
        let mut acc = [_mm512_setzero_ps(); ACCUMULATORS];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_dpbf16_ps(*v, a, a);
            }
        }
        acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
    }

    /// Reads `data`, split into `N` equal streams of whole steps of
    /// `4·LANES` f32, in lockstep. The tail past the last whole step is not
    /// read. Each step adds the next four vectors of every stream to four
    /// accumulators with `add`, which loads the vector at its pointer. With `ahead` > 0
    /// bytes, each step first requests the lines that far ahead in every
    /// stream, into L2 with `l2` and else into L1. The stream count is a constant, so the accumulators
    /// stay in registers. Indexed by a runtime count, they went to the
    /// stack, and each line waited on a store and a reload. That capped one
    /// Zen 5 core at about 28 GB/s, against 42 GB/s read by a register loop.
    ///
    /// # Safety
    ///
    /// `add` must be safe to call on any pointer to `LANES` f32 of `data`.
    #[inline(always)]
    unsafe fn read_streams<const N: usize, const LANES: usize, V: Copy>(
        data: &[f32],
        ahead: usize,
        l2: bool,
        zero: V,
        add: impl Fn(V, *const f32) -> V,
    ) -> [V; 4] {
        let mut acc = [zero; 4];
        let step = 4 * LANES;
        let len = data.len() / N / step * step;
        let p = data.as_ptr();
        let ahead = ahead / 4;
        for i in (0..len).step_by(step) {
            for s in 0..N {
                let line = p.wrapping_add(s * len + i);
                if ahead > 0 {
                    for u in (0..step).step_by(16) {
                        let at = line.wrapping_add(ahead + u).cast();
                        // SAFETY: prefetch never faults, so an address past
                        // the slice is harmless. SSE is part of x86_64.
                        unsafe {
                            if l2 {
                                _mm_prefetch::<_MM_HINT_T1>(at)
                            } else {
                                _mm_prefetch::<_MM_HINT_T0>(at)
                            }
                        };
                    }
                }
                for (u, v) in acc.iter_mut().enumerate() {
                    // s·len + i + LANES·(u + 1) <= N·len <= data.len(), as
                    // i + step <= len, so the vector lies inside `data`.
                    *v = add(*v, line.wrapping_add(LANES * u));
                }
            }
        }
        acc
    }

    /// Sums `data` with [`read_streams`] in 16-lane vectors: each step reads
    /// the next four 64-byte lines of every stream.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn read_avx512<const N: usize>(data: &[f32], ahead: usize, l2: bool) -> f32 {
        // SAFETY: AVX-512F is enabled here, and read_streams passes only
        // pointers to 16 f32 inside `data`.
        let add = |v, x| _mm512_add_ps(v, unsafe { _mm512_loadu_ps(x) });
        // SAFETY: `add` meets the contract, as above.
        let acc = unsafe { read_streams::<N, 16, _>(data, ahead, l2, _mm512_setzero_ps(), add) };
        acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
    }

    /// As `read_avx512` with 8-lane vectors, for CPUs without AVX-512:
    /// each step reads the next two lines of every stream.
    #[target_feature(enable = "avx2")]
    pub unsafe fn read_avx2<const N: usize>(data: &[f32], ahead: usize, l2: bool) -> f32 {
        // SAFETY: AVX2 is enabled here, and read_streams passes only
        // pointers to 8 f32 inside `data`.
        let add = |v, x| _mm256_add_ps(v, unsafe { _mm256_loadu_ps(x) });
        // SAFETY: `add` meets the contract, as above.
        let acc = unsafe { read_streams::<N, 8, _>(data, ahead, l2, _mm256_setzero_ps(), add) };
        sum_lanes_avx2(&acc)
    }

    /// Returns the sum of every lane of `acc`.
    #[target_feature(enable = "avx")]
    fn sum_lanes_avx2(acc: &[__m256]) -> f32 {
        let mut out = [0.0f32; 8];
        let mut sum = 0.0;
        for &v in acc {
            // SAFETY: `out` has room for the 8 floats of one vector.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), v) };
            sum += out.iter().sum::<f32>();
        }
        sum
    }
}

/// Returns GFLOP/s of a register-only loop run on `threads` threads.
fn peak(threads: usize, flops_per_iter: f64, kernel: fn(usize) -> f32) -> f64 {
    let iters = 20_000_000;
    let secs = best_of(3, || {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| std::hint::black_box(kernel(iters)));
            }
        })
    });
    threads as f64 * flops_per_iter * iters as f64 / secs / 1e9
}

/// Returns the best GB/s of summing 512 MiB split over `threads` threads,
/// over the stream counts of `STREAMS` and the prefetch settings of
/// `PREFETCH`, with the count and the setting that reached it.
fn read_bandwidth(data: &[f32], threads: usize, sum: ReadProbe) -> (f64, usize, (usize, bool)) {
    let mut best = (0.0, 1, (0, false));
    let per = data.len() / threads;
    for streams in STREAMS {
        for ahead in PREFETCH {
            let secs = best_of(5, || {
                std::thread::scope(|s| {
                    for part in data.chunks_exact(per) {
                        s.spawn(move || std::hint::black_box(sum(part, streams, ahead.0, ahead.1)));
                    }
                })
            });
            // Only the whole steps of each stream are read and counted.
            let read = per / streams / 64 * 64 * streams;
            let gbs = (read * threads * 4) as f64 / secs / 1e9;
            if gbs > best.0 {
                best = (gbs, streams, ahead);
            }
        }
    }
    best
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut fields = vec![format!("\"cores\": {cores}")];
    let read_only = std::env::args().any(|a| a == "--read-only");
    #[cfg(target_arch = "x86_64")]
    {
        let per_fma = (ACCUMULATORS * 2) as f64;
        if !read_only {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: AVX-512F was detected just above.
                let k: fn(usize) -> f32 = |n| unsafe { x86::fma_avx512(n) };
                fields.push(format!("\"f32_fma_gflops_1t\": {:.1}", peak(1, per_fma * 16.0, k)));
                fields.push(format!("\"f32_fma_gflops_all\": {:.1}", peak(cores, per_fma * 16.0, k)));
                fields.push("\"f32_fma_isa\": \"avx512\"".into());
            } else if std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: AVX2 and FMA are present on every CPU with FMA here.
                let k: fn(usize) -> f32 = |n| unsafe { x86::fma_avx2(n) };
                fields.push(format!("\"f32_fma_gflops_1t\": {:.1}", peak(1, per_fma * 8.0, k)));
                fields.push(format!("\"f32_fma_gflops_all\": {:.1}", peak(cores, per_fma * 8.0, k)));
                fields.push("\"f32_fma_isa\": \"avx2\"".into());
            }
            if std::arch::is_x86_feature_detected!("avx512bf16") {
                // SAFETY: AVX512_BF16 (and so AVX-512F) was detected just above.
                let k: fn(usize) -> f32 = |n| unsafe { x86::dpbf16_avx512(n) };
                fields.push(format!("\"bf16_dot_gflops_1t\": {:.1}", peak(1, (ACCUMULATORS * 64) as f64, k)));
            }
        }
        let sum: Option<ReadProbe> = if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F was detected just above.
            Some(|d, n, a, l2| unsafe { with_streams!(x86::read_avx512, d, n, a, l2) })
        } else if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 was detected just above.
            Some(|d, n, a, l2| unsafe { with_streams!(x86::read_avx2, d, n, a, l2) })
        } else {
            None
        };
        if let Some(sum) = sum {
            let data = vec![1.0f32; 128 << 20];
            for (threads, tag) in [(1, "1t"), (cores, "all")] {
                let (gbs, streams, (ahead, l2)) = read_bandwidth(&data, threads, sum);
                let level = if l2 { "L2" } else { "L1" };
                fields.push(format!(
                    "\"read_gbs_{tag}\": {gbs:.1}, \"read_streams_{tag}\": {streams}, \"read_prefetch_{tag}\": {ahead}, \"read_prefetch_level_{tag}\": \"{level}\""
                ));
            }
        }
    }
    println!("{{{}}}", fields.join(", "));
}
