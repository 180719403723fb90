//! AVX-512 implementation: 16 f32 lanes in a `__m512`, with `__mmask16`
//! lane masks.

use super::{SimdF32, MAX_LANES};
use core::arch::x86_64::*;

/// Token proving that the CPU runs AVX-512 F, BW, DQ and VL, plus the AVX2,
/// FMA and F16C that every such CPU has.
#[derive(Clone, Copy, Debug)]
pub struct Avx512(());

impl Avx512 {
    /// Creates the token.
    ///
    /// # Safety
    ///
    /// The CPU must support AVX-512 F, BW, DQ, VL and AVX2, FMA, F16C.
    #[inline(always)]
    pub unsafe fn new_unchecked() -> Self {
        Avx512(())
    }

    /// Returns the token if the running CPU supports the required features.
    pub fn detect() -> Option<Self> {
        let ok = super::avx2::Avx2::detect().is_some()
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl");
        // SAFETY: the features were detected just above.
        ok.then(|| unsafe { Self::new_unchecked() })
    }
}

#[inline(always)]
fn tail_mask(n: usize) -> __mmask16 {
    debug_assert!(n < 16);
    ((1u32 << n) - 1) as __mmask16
}

// SAFETY: a token exists only on CPUs with the AVX-512 subsets above, so
// every intrinsic below is supported. Pointer methods forward the caller's
// contract.
unsafe impl SimdF32 for Avx512 {
    type V = __m512;
    type M = __mmask16;
    const LANES: usize = 16;
    const NAME: &'static str = "avx512";

    #[inline(always)]
    fn splat(self, x: f32) -> __m512 {
        // SAFETY: AVX-512F is implied by the token.
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> __m512 {
        // SAFETY: the caller guarantees 16 readable f32 at `p`.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: __m512) {
        // SAFETY: the caller guarantees 16 writable f32 at `p`.
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn load_tail(self, p: *const f32, n: usize, fill: f32) -> __m512 {
        // SAFETY: masked-off lanes are not accessed and do not fault; the
        // first n lanes are readable by the caller's contract.
        unsafe { _mm512_mask_loadu_ps(_mm512_set1_ps(fill), tail_mask(n), p) }
    }
    #[inline(always)]
    unsafe fn store_tail(self, p: *mut f32, n: usize, v: __m512) {
        // SAFETY: only the first n lanes are written, which the caller
        // guarantees to be writable.
        unsafe { _mm512_mask_storeu_ps(p, tail_mask(n), v) }
    }
    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F is implied by the token.
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F is implied by the token.
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F is implied by the token.
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F is implied by the token.
        unsafe { _mm512_div_ps(a, b) }
    }
    #[inline(always)]
    fn abs(self, a: __m512) -> __m512 {
        // SAFETY: AVX-512F is implied by the token.
        unsafe { _mm512_abs_ps(a) }
    }
    #[inline(always)]
    fn swap_pairs(self, a: __m512) -> __m512 {
        // SAFETY: AVX-512F is implied by the token. 0b10_11_00_01 picks
        // lanes (1 0 3 2) within every group of four.
        unsafe { _mm512_permute_ps::<0b1011_0001>(a) }
    }
    #[inline(always)]
    fn fma(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: AVX-512F is implied by the token.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn max(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F is implied by the token.
        unsafe { _mm512_max_ps(a, b) }
    }
    #[inline(always)]
    fn min(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F is implied by the token.
        unsafe { _mm512_min_ps(a, b) }
    }
    #[inline(always)]
    fn shift_into_exponent(self, a: __m512) -> __m512 {
        // SAFETY: AVX-512F is implied by the token.
        unsafe { _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_castps_si512(a))) }
    }
    #[inline(always)]
    fn sqrt(self, a: __m512) -> __m512 {
        // SAFETY: AVX-512F is implied by the token.
        unsafe { _mm512_sqrt_ps(a) }
    }
    #[inline(always)]
    fn split_exponent(self, a: __m512) -> (__m512, __m512) {
        // SAFETY: AVX-512F is implied by the token.
        unsafe {
            let bits = _mm512_castps_si512(a);
            let e = _mm512_sub_epi32(_mm512_srli_epi32::<23>(bits), _mm512_set1_epi32(127));
            let m =
                _mm512_or_si512(_mm512_and_si512(bits, _mm512_set1_epi32(0x007f_ffff)), _mm512_set1_epi32(0x3f80_0000));
            (_mm512_castsi512_ps(m), _mm512_cvtepi32_ps(e))
        }
    }
    #[inline(always)]
    fn lt(self, a: __m512, b: __m512) -> __mmask16 {
        // SAFETY: AVX-512F is implied by the token.
        unsafe { _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b) }
    }
    #[inline(always)]
    fn gt(self, a: __m512, b: __m512) -> __mmask16 {
        // SAFETY: AVX-512F is implied by the token.
        unsafe { _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, b) }
    }
    #[inline(always)]
    fn is_nan(self, a: __m512) -> __mmask16 {
        // SAFETY: AVX-512F is implied by the token.
        unsafe { _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, a) }
    }
    #[inline(always)]
    fn mask_or(self, a: __mmask16, b: __mmask16) -> __mmask16 {
        a | b
    }
    #[inline(always)]
    fn mask_none(self) -> __mmask16 {
        0
    }
    #[inline(always)]
    fn mask_any(self, m: __mmask16) -> bool {
        m != 0
    }
    #[inline(always)]
    fn select(self, m: __mmask16, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F is implied by the token.
        unsafe { _mm512_mask_blend_ps(m, b, a) }
    }
    #[inline(always)]
    fn reduce_add(self, v: __m512) -> f32 {
        // SAFETY: AVX-512F is implied by the token.
        unsafe { _mm512_reduce_add_ps(v) }
    }
    #[inline(always)]
    fn reduce_add_lanes(self, v: &[__m512]) -> __m512 {
        debug_assert!(v.len() <= 16);
        // SAFETY: AVX-512F is implied by the token.
        unsafe {
            // The tree below leaves the sum of input 4m + k in lane 4k + m,
            // so the inputs go in transposed order.
            let mut w = [_mm512_setzero_ps(); 16];
            for (i, &x) in v.iter().enumerate() {
                w[4 * (i % 4) + i / 4] = x;
            }
            // 16 -> 8: the low and high 256-bit halves of each input pair
            // added, input 2i in blocks 0-1 and input 2i + 1 in blocks 2-3.
            let mut t = [_mm512_setzero_ps(); 8];
            for (i, t) in t.iter_mut().enumerate() {
                let (a, b) = (w[2 * i], w[2 * i + 1]);
                *t = _mm512_add_ps(_mm512_shuffle_f32x4::<0x44>(a, b), _mm512_shuffle_f32x4::<0xEE>(a, b));
            }
            // 8 -> 4: 128-bit block k of u[i] contains four partial sums of
            // input 4i + k.
            let mut u = [_mm512_setzero_ps(); 4];
            for (i, u) in u.iter_mut().enumerate() {
                let (a, b) = (t[2 * i], t[2 * i + 1]);
                *u = _mm512_add_ps(_mm512_shuffle_f32x4::<0x88>(a, b), _mm512_shuffle_f32x4::<0xDD>(a, b));
            }
            // 4 -> 2 -> 1 inside the 128-bit blocks: pairs of lanes added.
            let pair =
                |a: __m512, b: __m512| _mm512_add_ps(_mm512_shuffle_ps::<0x88>(a, b), _mm512_shuffle_ps::<0xDD>(a, b));
            let x0 = pair(u[0], u[1]);
            let x1 = pair(u[2], u[3]);
            pair(x0, x1)
        }
    }
    #[inline(always)]
    fn transpose(self, rows: &mut [__m512]) {
        debug_assert_eq!(rows.len(), 16);
        // SAFETY: AVX-512F is implied by the token.
        unsafe {
            let r: &mut [__m512; 16] = rows.try_into().expect("transpose needs exactly 16 rows");
            // Two stages of lane shuffles: afterwards, 128-bit block b of
            // r[4i + k] contains column 4b + k of rows 4i .. 4i + 4.
            let mut t = [_mm512_setzero_ps(); 16];
            for i in 0..8 {
                t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
            }
            for i in 0..4 {
                let (a, b, c, d) = (t[4 * i], t[4 * i + 1], t[4 * i + 2], t[4 * i + 3]);
                r[4 * i] = _mm512_shuffle_ps::<0x44>(a, c);
                r[4 * i + 1] = _mm512_shuffle_ps::<0xEE>(a, c);
                r[4 * i + 2] = _mm512_shuffle_ps::<0x44>(b, d);
                r[4 * i + 3] = _mm512_shuffle_ps::<0xEE>(b, d);
            }
            // Two rounds of 128-bit block shuffles gather column c from the
            // four row groups into r[c].
            for h in 0..2 {
                for k in 0..4 {
                    let (a, b) = (r[8 * h + k], r[8 * h + 4 + k]);
                    t[8 * h + k] = _mm512_shuffle_f32x4::<0x88>(a, b);
                    t[8 * h + 4 + k] = _mm512_shuffle_f32x4::<0xDD>(a, b);
                }
            }
            for k in 0..8 {
                let (a, b) = (t[k], t[8 + k]);
                r[k] = _mm512_shuffle_f32x4::<0x88>(a, b);
                r[8 + k] = _mm512_shuffle_f32x4::<0xDD>(a, b);
            }
        }
    }
    #[inline(always)]
    fn reduce_max(self, v: __m512) -> f32 {
        // SAFETY: AVX-512F is implied by the token.
        unsafe { _mm512_reduce_max_ps(v) }
    }
    #[inline(always)]
    fn reduce_min(self, v: __m512) -> f32 {
        // SAFETY: AVX-512F is implied by the token.
        unsafe { _mm512_reduce_min_ps(v) }
    }
    #[inline(always)]
    fn to_array(self, v: __m512, out: &mut [f32; MAX_LANES]) {
        // SAFETY: `out` has room for 16 values.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr(), v) }
    }
    #[inline(always)]
    unsafe fn compress(self, p: *mut f32, m: __mmask16, v: __m512) -> usize {
        // The register form and a full store: the memory form of
        // vcompressps is microcoded and slow on some cores (AMD Zen 4).
        // SAFETY: the caller guarantees 16 writable values at p; AVX-512F
        // is implied by the token.
        unsafe { _mm512_storeu_ps(p, _mm512_maskz_compress_ps(m, v)) };
        m.count_ones() as usize
    }
    #[inline(always)]
    unsafe fn load_f16(self, p: *const u16) -> __m512 {
        // SAFETY: the caller guarantees 16 readable u16 at `p`; AVX-512F is
        // implied by the token.
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())) }
    }
    #[inline(always)]
    unsafe fn load_bf16(self, p: *const u16) -> __m512 {
        // SAFETY: the caller guarantees 16 readable u16 at `p`; AVX-512F is
        // implied by the token.
        unsafe {
            let wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(p.cast()));
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(wide))
        }
    }
    #[inline(always)]
    unsafe fn load_bf16_pairs(self, p: *const u16) -> (__m512, __m512) {
        // SAFETY: the caller guarantees 32 readable u16 at `p`; AVX-512F is
        // implied by the token.
        unsafe {
            let pairs = _mm512_loadu_si512(p.cast());
            let even = _mm512_slli_epi32::<16>(pairs);
            let odd = _mm512_and_si512(pairs, _mm512_set1_epi32(0xffff_0000_u32 as i32));
            (_mm512_castsi512_ps(even), _mm512_castsi512_ps(odd))
        }
    }
    #[inline(always)]
    fn prefetch(self, p: *const u8) {
        // SAFETY: prefetch is a hint that never faults, for any address;
        // SSE is implied by the token.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
    }
    #[inline(always)]
    fn prefetch_l2(self, p: *const u8) {
        // SAFETY: prefetch is a hint that never faults, for any address;
        // SSE is implied by the token.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast()) }
    }
    outline_with_features!(Avx512, "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c");
}
