//! NEON implementation: 4 f32 lanes in a `float32x4_t`.

use super::{SimdF32, MAX_LANES};
use core::arch::aarch64::*;

/// Token proving that the CPU runs NEON (Advanced SIMD), which every
/// AArch64 CPU that Linux supports has.
#[derive(Clone, Copy, Debug)]
pub struct Neon(());

impl Neon {
    /// Creates the token.
    ///
    /// # Safety
    ///
    /// The CPU must support NEON.
    #[inline(always)]
    pub unsafe fn new_unchecked() -> Self {
        Neon(())
    }

    /// Returns the token if the running CPU supports NEON.
    pub fn detect() -> Option<Self> {
        let ok = std::arch::is_aarch64_feature_detected!("neon");
        // SAFETY: the feature was detected just above.
        ok.then(|| unsafe { Self::new_unchecked() })
    }
}

// SAFETY: a token exists only on CPUs with NEON, so every intrinsic below is
// supported. Pointer methods forward the caller's contract.
unsafe impl SimdF32 for Neon {
    type V = float32x4_t;
    type M = uint32x4_t;
    const LANES: usize = 4;
    const NAME: &'static str = "neon";

    #[inline(always)]
    fn splat(self, x: f32) -> float32x4_t {
        // SAFETY: NEON is implied by the token.
        unsafe { vdupq_n_f32(x) }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> float32x4_t {
        // SAFETY: the caller guarantees 4 readable f32 at `p`.
        unsafe { vld1q_f32(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: float32x4_t) {
        // SAFETY: the caller guarantees 4 writable f32 at `p`.
        unsafe { vst1q_f32(p, v) }
    }
    #[inline(always)]
    unsafe fn load_tail(self, p: *const f32, n: usize, fill: f32) -> float32x4_t {
        debug_assert!(n < 4);
        let mut buf = [fill; 4];
        // SAFETY: the caller guarantees n readable f32 at `p`; `buf` holds 4.
        unsafe {
            core::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), n);
            vld1q_f32(buf.as_ptr())
        }
    }
    #[inline(always)]
    unsafe fn store_tail(self, p: *mut f32, n: usize, v: float32x4_t) {
        debug_assert!(n < 4);
        let mut buf = [0.0f32; 4];
        // SAFETY: `buf` holds 4 values; the caller guarantees n writable f32
        // at `p`.
        unsafe {
            vst1q_f32(buf.as_mut_ptr(), v);
            core::ptr::copy_nonoverlapping(buf.as_ptr(), p, n);
        }
    }
    #[inline(always)]
    fn add(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is implied by the token.
        unsafe { vaddq_f32(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is implied by the token.
        unsafe { vsubq_f32(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is implied by the token.
        unsafe { vmulq_f32(a, b) }
    }
    #[inline(always)]
    fn div(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is implied by the token.
        unsafe { vdivq_f32(a, b) }
    }
    #[inline(always)]
    fn abs(self, a: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is implied by the token.
        unsafe { vabsq_f32(a) }
    }
    #[inline(always)]
    fn swap_pairs(self, a: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is implied by the token. vrev64 reverses the two
        // 32-bit lanes of each 64-bit half.
        unsafe { vrev64q_f32(a) }
    }
    #[inline(always)]
    fn fma(self, a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is implied by the token. vfmaq_f32(c, a, b) = c + a*b.
        unsafe { vfmaq_f32(c, a, b) }
    }
    #[inline(always)]
    fn max(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is implied by the token.
        unsafe { vmaxq_f32(a, b) }
    }
    #[inline(always)]
    fn min(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is implied by the token.
        unsafe { vminq_f32(a, b) }
    }
    #[inline(always)]
    fn shift_into_exponent(self, a: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is implied by the token.
        unsafe { vreinterpretq_f32_u32(vshlq_n_u32::<23>(vreinterpretq_u32_f32(a))) }
    }
    #[inline(always)]
    fn sqrt(self, a: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is implied by the token.
        unsafe { vsqrtq_f32(a) }
    }
    #[inline(always)]
    fn split_exponent(self, a: float32x4_t) -> (float32x4_t, float32x4_t) {
        // SAFETY: NEON is implied by the token.
        unsafe {
            let bits = vreinterpretq_u32_f32(a);
            let e = vsubq_s32(vreinterpretq_s32_u32(vshrq_n_u32::<23>(bits)), vdupq_n_s32(127));
            let m = vorrq_u32(vandq_u32(bits, vdupq_n_u32(0x007f_ffff)), vdupq_n_u32(0x3f80_0000));
            (vreinterpretq_f32_u32(m), vcvtq_f32_s32(e))
        }
    }
    #[inline(always)]
    fn lt(self, a: float32x4_t, b: float32x4_t) -> uint32x4_t {
        // SAFETY: NEON is implied by the token.
        unsafe { vcltq_f32(a, b) }
    }
    #[inline(always)]
    fn gt(self, a: float32x4_t, b: float32x4_t) -> uint32x4_t {
        // SAFETY: NEON is implied by the token.
        unsafe { vcgtq_f32(a, b) }
    }
    #[inline(always)]
    fn is_nan(self, a: float32x4_t) -> uint32x4_t {
        // SAFETY: NEON is implied by the token. A lane equals itself unless
        // it is NaN.
        unsafe { vmvnq_u32(vceqq_f32(a, a)) }
    }
    #[inline(always)]
    fn mask_or(self, a: uint32x4_t, b: uint32x4_t) -> uint32x4_t {
        // SAFETY: NEON is implied by the token.
        unsafe { vorrq_u32(a, b) }
    }
    #[inline(always)]
    fn mask_none(self) -> uint32x4_t {
        // SAFETY: NEON is implied by the token.
        unsafe { vdupq_n_u32(0) }
    }
    #[inline(always)]
    fn mask_any(self, m: uint32x4_t) -> bool {
        // SAFETY: NEON is implied by the token.
        unsafe { vmaxvq_u32(m) != 0 }
    }
    #[inline(always)]
    fn select(self, m: uint32x4_t, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is implied by the token.
        unsafe { vbslq_f32(m, a, b) }
    }
    #[inline(always)]
    fn reduce_add(self, v: float32x4_t) -> f32 {
        // SAFETY: NEON is implied by the token.
        unsafe { vaddvq_f32(v) }
    }
    #[inline(always)]
    fn reduce_add_lanes(self, v: &[float32x4_t]) -> float32x4_t {
        debug_assert!(v.len() <= 4);
        // SAFETY: NEON is implied by the token.
        unsafe {
            let mut w = [vdupq_n_f32(0.0); 4];
            w[..v.len()].copy_from_slice(v);
            // Pairwise adds: [v0 v0 v1 v1] and [v2 v2 v3 v3] partial sums,
            // then [v0 v1 v2 v3].
            vpaddq_f32(vpaddq_f32(w[0], w[1]), vpaddq_f32(w[2], w[3]))
        }
    }
    #[inline(always)]
    fn transpose(self, rows: &mut [float32x4_t]) {
        debug_assert_eq!(rows.len(), 4);
        // SAFETY: NEON is implied by the token.
        unsafe {
            let r: &mut [float32x4_t; 4] = rows.try_into().expect("transpose needs exactly 4 rows");
            // vtrnq pairs lanes 0 and 2 (first) and 1 and 3 (second) of
            // two rows; the 64-bit halves then combine into columns.
            let a = vtrnq_f32(r[0], r[1]);
            let b = vtrnq_f32(r[2], r[3]);
            r[0] = vcombine_f32(vget_low_f32(a.0), vget_low_f32(b.0));
            r[1] = vcombine_f32(vget_low_f32(a.1), vget_low_f32(b.1));
            r[2] = vcombine_f32(vget_high_f32(a.0), vget_high_f32(b.0));
            r[3] = vcombine_f32(vget_high_f32(a.1), vget_high_f32(b.1));
        }
    }
    #[inline(always)]
    fn reduce_max(self, v: float32x4_t) -> f32 {
        // SAFETY: NEON is implied by the token.
        unsafe { vmaxvq_f32(v) }
    }
    #[inline(always)]
    fn reduce_min(self, v: float32x4_t) -> f32 {
        // SAFETY: NEON is implied by the token.
        unsafe { vminvq_f32(v) }
    }
    #[inline(always)]
    fn to_array(self, v: float32x4_t, out: &mut [f32; MAX_LANES]) {
        // SAFETY: `out` has room for 16 >= 4 values.
        unsafe { vst1q_f32(out.as_mut_ptr(), v) }
    }
    #[inline(always)]
    unsafe fn load_f16(self, p: *const u16) -> float32x4_t {
        // SAFETY: the caller guarantees 4 readable u16 at `p`; NEON is
        // implied by the token. The lanes follow `f16_bits_to_f32_bits`.
        unsafe {
            let h = vmovl_u16(vld1_u16(p));
            let sign = vshlq_n_u32::<16>(vandq_u32(h, vdupq_n_u32(0x8000)));
            let magnitude = vshlq_n_u32::<13>(vandq_u32(h, vdupq_n_u32(0x7fff)));
            let scaled = vmulq_f32(vreinterpretq_f32_u32(magnitude), vdupq_n_f32(f32::from_bits(0x7780_0000)));
            let exponent = vandq_u32(h, vdupq_n_u32(0x7c00));
            let special = vceqq_u32(exponent, vdupq_n_u32(0x7c00));
            let inf_nan = vorrq_u32(magnitude, vdupq_n_u32(0x7f80_0000));
            let bits = vbslq_u32(special, inf_nan, vreinterpretq_u32_f32(scaled));
            vreinterpretq_f32_u32(vorrq_u32(bits, sign))
        }
    }
    #[inline(always)]
    unsafe fn load_bf16(self, p: *const u16) -> float32x4_t {
        // SAFETY: the caller guarantees 4 readable u16 at `p`; NEON is
        // implied by the token.
        unsafe { vreinterpretq_f32_u32(vshlq_n_u32::<16>(vmovl_u16(vld1_u16(p)))) }
    }
    #[inline(always)]
    unsafe fn load_bf16_pairs(self, p: *const u16) -> (float32x4_t, float32x4_t) {
        // SAFETY: the caller guarantees 8 readable u16 at `p`; NEON is
        // implied by the token.
        unsafe {
            let pairs = vreinterpretq_u32_u16(vld1q_u16(p));
            let even = vshlq_n_u32::<16>(pairs);
            let odd = vandq_u32(pairs, vdupq_n_u32(0xffff_0000));
            (vreinterpretq_f32_u32(even), vreinterpretq_f32_u32(odd))
        }
    }
    outline_with_features!(Neon, "neon");
}
