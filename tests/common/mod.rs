//! Helpers shared by the integration test suites.
#![allow(dead_code)]

use mlak::Isa;

/// f32 machine epsilon as f64, the unit of every relative tolerance.
pub const EPS: f64 = f32::EPSILON as f64;

/// Runs `f` with dispatch forced to `isa` on this thread. A level this CPU
/// lacks is skipped with a line on stderr, written around libtest's output
/// capture (which only intercepts the print macros) so that it shows even
/// for a passing test.
pub fn on_isa(isa: Isa, f: impl FnOnce()) {
    if !mlak::isa_supported(isa) {
        use std::io::Write;
        // libtest runs each test on its own thread, so this prints once per
        // test even when a property test calls it for every case.
        thread_local! {
            static REPORTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        }
        if !REPORTED.with(|r| r.replace(true)) {
            let test = std::thread::current().name().unwrap_or("test").to_string();
            let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {} not supported by this CPU", isa.name());
        }
        return;
    }
    mlak::with_isa(isa, f).expect("a supported level must be selectable");
}

/// Asserts that the last kernel call on this thread ran `isa`.
pub fn assert_ran(isa: Isa) {
    assert_eq!(mlak::last_dispatched_isa(), Some(isa), "the kernel call did not dispatch to {}", isa.name());
}

/// Distance in units in the last place between two finite f32 values, or
/// 0 when both are the same infinity or both are NaN.
pub fn ulp_distance(a: f32, b: f32) -> u64 {
    if a == b || (a.is_nan() && b.is_nan()) {
        return 0;
    }
    let key = |v: f32| {
        let bits = v.to_bits() as i32;
        if bits < 0 {
            i64::from(i32::MIN) - i64::from(bits)
        } else {
            i64::from(bits)
        }
    };
    (key(a) - key(b)).unsigned_abs()
}

/// A buffer with `offset` leading elements, so that the data pointer is
/// misaligned with respect to any vector width when `offset` is odd.
pub struct Unaligned {
    storage: Vec<f32>,
    offset: usize,
}

impl Unaligned {
    pub fn new(len: usize, offset: usize, fill: f32) -> Self {
        Unaligned { storage: vec![fill; len + offset], offset }
    }
    pub fn from_slice(data: &[f32], offset: usize) -> Self {
        let mut u = Unaligned::new(data.len(), offset, 0.0);
        u.as_mut().copy_from_slice(data);
        u
    }
    pub fn as_ref(&self) -> &[f32] {
        &self.storage[self.offset..]
    }
    pub fn as_mut(&mut self) -> &mut [f32] {
        &mut self.storage[self.offset..]
    }
}

/// Deterministic xorshift generator for tests that need more data than a
/// proptest strategy should shrink.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

/// Number of proptest cases: `PROPTEST_CASES` if set, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
