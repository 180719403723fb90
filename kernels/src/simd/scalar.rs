//! One-lane implementation used by the `scalar` dispatch level. It runs on
//! any CPU and keeps the operation order of the vector bodies.

use super::{SimdF32, MAX_LANES};

/// Token for plain scalar code; always available.
#[derive(Clone, Copy, Debug, Default)]
pub struct Scalar;

impl Scalar {
    /// Creates the token. It is `unsafe` only to match the vector tokens.
    ///
    /// # Safety
    ///
    /// None: scalar code runs on every CPU.
    #[inline(always)]
    pub unsafe fn new_unchecked() -> Self {
        Scalar
    }
}

// SAFETY: every method is plain Rust on one f32; the pointer methods state
// their own contracts.
unsafe impl SimdF32 for Scalar {
    type V = f32;
    type M = bool;
    const LANES: usize = 1;
    const NAME: &'static str = "scalar";

    #[inline(always)]
    fn splat(self, x: f32) -> f32 {
        x
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> f32 {
        // SAFETY: the caller guarantees one readable f32 at `p`.
        unsafe { p.read_unaligned() }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: f32) {
        // SAFETY: the caller guarantees one writable f32 at `p`.
        unsafe { p.write_unaligned(v) }
    }
    #[inline(always)]
    unsafe fn load_tail(self, _p: *const f32, n: usize, fill: f32) -> f32 {
        debug_assert_eq!(n, 0, "a one-lane tail is always empty");
        fill
    }
    #[inline(always)]
    unsafe fn store_tail(self, _p: *mut f32, n: usize, _v: f32) {
        debug_assert_eq!(n, 0, "a one-lane tail is always empty");
    }
    #[inline(always)]
    fn add(self, a: f32, b: f32) -> f32 {
        a + b
    }
    #[inline(always)]
    fn sub(self, a: f32, b: f32) -> f32 {
        a - b
    }
    #[inline(always)]
    fn mul(self, a: f32, b: f32) -> f32 {
        a * b
    }
    #[inline(always)]
    fn div(self, a: f32, b: f32) -> f32 {
        a / b
    }
    #[inline(always)]
    fn abs(self, a: f32) -> f32 {
        a.abs()
    }
    #[inline(always)]
    fn swap_pairs(self, a: f32) -> f32 {
        a
    }
    #[inline(always)]
    fn fma(self, a: f32, b: f32, c: f32) -> f32 {
        // Two roundings instead of one: the portable baseline has no FMA
        // instruction, and `f32::mul_add` would call libm's software fmaf,
        // about 50 times slower. The tests' tolerances cover the difference.
        a * b + c
    }
    #[inline(always)]
    fn max(self, a: f32, b: f32) -> f32 {
        if a > b {
            a
        } else {
            b
        }
    }
    #[inline(always)]
    fn min(self, a: f32, b: f32) -> f32 {
        if a < b {
            a
        } else {
            b
        }
    }
    #[inline(always)]
    fn shift_into_exponent(self, a: f32) -> f32 {
        f32::from_bits(a.to_bits() << 23)
    }
    #[inline(always)]
    fn sqrt(self, a: f32) -> f32 {
        a.sqrt()
    }
    #[inline(always)]
    fn split_exponent(self, a: f32) -> (f32, f32) {
        let bits = a.to_bits();
        let e = ((bits >> 23) & 0xff) as i32 - 127;
        (f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000), e as f32)
    }
    #[inline(always)]
    fn lt(self, a: f32, b: f32) -> bool {
        a < b
    }
    #[inline(always)]
    fn gt(self, a: f32, b: f32) -> bool {
        a > b
    }
    #[inline(always)]
    fn is_nan(self, a: f32) -> bool {
        a.is_nan()
    }
    #[inline(always)]
    fn mask_or(self, a: bool, b: bool) -> bool {
        a | b
    }
    #[inline(always)]
    fn mask_none(self) -> bool {
        false
    }
    #[inline(always)]
    fn mask_any(self, m: bool) -> bool {
        m
    }
    #[inline(always)]
    fn select(self, m: bool, a: f32, b: f32) -> f32 {
        if m {
            a
        } else {
            b
        }
    }
    #[inline(always)]
    fn reduce_add(self, v: f32) -> f32 {
        v
    }
    #[inline(always)]
    fn reduce_add_lanes(self, v: &[f32]) -> f32 {
        debug_assert!(v.len() <= 1);
        v.first().copied().unwrap_or(0.0)
    }
    #[inline(always)]
    fn transpose(self, rows: &mut [f32]) {
        debug_assert_eq!(rows.len(), 1);
    }
    #[inline(always)]
    fn reduce_max(self, v: f32) -> f32 {
        v
    }
    #[inline(always)]
    fn reduce_min(self, v: f32) -> f32 {
        v
    }
    #[inline(always)]
    fn to_array(self, v: f32, out: &mut [f32; MAX_LANES]) {
        out[0] = v;
    }
    #[inline(always)]
    unsafe fn load_f16(self, p: *const u16) -> f32 {
        // SAFETY: the caller guarantees one readable u16 at `p`.
        super::f16_bits_to_f32(unsafe { p.read_unaligned() })
    }
    #[inline(always)]
    unsafe fn load_bf16(self, p: *const u16) -> f32 {
        // SAFETY: the caller guarantees one readable u16 at `p`.
        f32::from_bits(u32::from(unsafe { p.read_unaligned() }) << 16)
    }
    #[inline(always)]
    unsafe fn load_bf16_pairs(self, p: *const u16) -> (f32, f32) {
        // SAFETY: the caller guarantees two readable u16 at `p`.
        unsafe { (self.load_bf16(p), self.load_bf16(p.add(1))) }
    }
    #[inline(always)]
    unsafe fn outline<B: super::Outlined<Self>>(self, body: B) -> B::Out {
        #[inline(never)]
        unsafe fn run<B: super::Outlined<Scalar>>(s: Scalar, body: B) -> B::Out {
            // SAFETY: the caller of `outline` meets the body's contract.
            unsafe { body.run(s) }
        }
        // SAFETY: the caller meets the body's contract.
        unsafe { run(self, body) }
    }
}
