//! AVX2 + FMA implementation: 8 f32 lanes in a `__m256`.

use super::{SimdF32, MAX_LANES};
use core::arch::x86_64::*;

/// For each 8-bit lane mask m, the indices of the set lanes of m in
/// increasing order, one per byte from the lowest, then zeros: the
/// `vpermps` indices that move the selected lanes to the front.
static COMPRESS_INDICES: [u64; 256] = compress_indices();

/// Builds [`COMPRESS_INDICES`].
const fn compress_indices() -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut m = 0;
    while m < 256 {
        let (mut lane, mut count, mut packed) = (0, 0, 0u64);
        while lane < 8 {
            if m & (1 << lane) != 0 {
                packed |= (lane as u64) << (8 * count);
                count += 1;
            }
            lane += 1;
        }
        table[m] = packed;
        m += 1;
    }
    table
}

/// Token proving that the CPU runs AVX2, FMA and F16C.
#[derive(Clone, Copy, Debug)]
pub struct Avx2(());

impl Avx2 {
    /// Creates the token.
    ///
    /// # Safety
    ///
    /// The CPU must support AVX2, FMA and F16C.
    #[inline(always)]
    pub unsafe fn new_unchecked() -> Self {
        Avx2(())
    }

    /// Returns the token if the running CPU supports AVX2, FMA and F16C.
    pub fn detect() -> Option<Self> {
        let ok = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c");
        // SAFETY: the features were detected just above.
        ok.then(|| unsafe { Self::new_unchecked() })
    }
}

#[inline(always)]
fn tail_mask(n: usize) -> __m256i {
    // SAFETY: the token's existence proves AVX2; these are register-only ops.
    unsafe {
        let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), idx)
    }
}

// SAFETY: a token exists only on CPUs with AVX2/FMA/F16C, so every intrinsic
// below is supported. Pointer methods forward the caller's contract.
unsafe impl SimdF32 for Avx2 {
    type V = __m256;
    type M = __m256;
    const LANES: usize = 8;
    const NAME: &'static str = "avx2";

    #[inline(always)]
    fn splat(self, x: f32) -> __m256 {
        // SAFETY: AVX is implied by the token.
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> __m256 {
        // SAFETY: the caller guarantees 8 readable f32 at `p`.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: __m256) {
        // SAFETY: the caller guarantees 8 writable f32 at `p`.
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn load_tail(self, p: *const f32, n: usize, fill: f32) -> __m256 {
        debug_assert!(n < 8);
        // SAFETY: masked-off lanes of vmaskmovps are not accessed and do not
        // fault; the first n lanes are readable by the caller's contract.
        unsafe {
            let m = tail_mask(n);
            let v = _mm256_maskload_ps(p, m);
            _mm256_blendv_ps(_mm256_set1_ps(fill), v, _mm256_castsi256_ps(m))
        }
    }
    #[inline(always)]
    unsafe fn store_tail(self, p: *mut f32, n: usize, v: __m256) {
        debug_assert!(n < 8);
        // SAFETY: only the first n lanes are written, which the caller
        // guarantees to be writable.
        unsafe { _mm256_maskstore_ps(p, tail_mask(n), v) }
    }
    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is implied by the token.
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is implied by the token.
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is implied by the token.
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is implied by the token.
        unsafe { _mm256_div_ps(a, b) }
    }
    #[inline(always)]
    fn abs(self, a: __m256) -> __m256 {
        // SAFETY: AVX is implied by the token. The mask clears bit 31.
        unsafe { _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff))) }
    }
    #[inline(always)]
    fn swap_pairs(self, a: __m256) -> __m256 {
        // SAFETY: AVX is implied by the token. 0b10_11_00_01 picks lanes
        // (1 0 3 2) within every group of four.
        unsafe { _mm256_permute_ps::<0b1011_0001>(a) }
    }
    #[inline(always)]
    fn fma(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: FMA is part of the token's contract.
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn max(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is implied by the token.
        unsafe { _mm256_max_ps(a, b) }
    }
    #[inline(always)]
    fn min(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is implied by the token.
        unsafe { _mm256_min_ps(a, b) }
    }
    #[inline(always)]
    fn shift_into_exponent(self, a: __m256) -> __m256 {
        // SAFETY: AVX2 is part of the token's contract.
        unsafe { _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_castps_si256(a))) }
    }
    #[inline(always)]
    fn sqrt(self, a: __m256) -> __m256 {
        // SAFETY: AVX is implied by the token.
        unsafe { _mm256_sqrt_ps(a) }
    }
    #[inline(always)]
    fn split_exponent(self, a: __m256) -> (__m256, __m256) {
        // SAFETY: AVX2 is part of the token's contract.
        unsafe {
            let bits = _mm256_castps_si256(a);
            let e = _mm256_sub_epi32(_mm256_srli_epi32::<23>(bits), _mm256_set1_epi32(127));
            let m =
                _mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32(0x007f_ffff)), _mm256_set1_epi32(0x3f80_0000));
            (_mm256_castsi256_ps(m), _mm256_cvtepi32_ps(e))
        }
    }
    #[inline(always)]
    fn lt(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is implied by the token.
        unsafe { _mm256_cmp_ps::<_CMP_LT_OQ>(a, b) }
    }
    #[inline(always)]
    fn gt(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is implied by the token.
        unsafe { _mm256_cmp_ps::<_CMP_GT_OQ>(a, b) }
    }
    #[inline(always)]
    fn is_nan(self, a: __m256) -> __m256 {
        // SAFETY: AVX is implied by the token.
        unsafe { _mm256_cmp_ps::<_CMP_UNORD_Q>(a, a) }
    }
    #[inline(always)]
    fn mask_or(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is implied by the token.
        unsafe { _mm256_or_ps(a, b) }
    }
    #[inline(always)]
    fn mask_none(self) -> __m256 {
        // SAFETY: AVX is implied by the token.
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    fn mask_any(self, m: __m256) -> bool {
        // SAFETY: AVX is implied by the token.
        unsafe { _mm256_movemask_ps(m) != 0 }
    }
    #[inline(always)]
    fn select(self, m: __m256, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is implied by the token.
        unsafe { _mm256_blendv_ps(b, a, m) }
    }
    #[inline(always)]
    fn reduce_add(self, v: __m256) -> f32 {
        // SAFETY: AVX is implied by the token.
        unsafe {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
            _mm_cvtss_f32(s)
        }
    }
    #[inline(always)]
    fn reduce_add_lanes(self, v: &[__m256]) -> __m256 {
        debug_assert!(v.len() <= 8);
        // SAFETY: AVX is implied by the token.
        unsafe {
            // The tree below leaves the sum of input 2m + k in lane 4k + m,
            // so the inputs go in that order.
            let mut w = [_mm256_setzero_ps(); 8];
            for (i, &x) in v.iter().enumerate() {
                w[2 * (i % 4) + i / 4] = x;
            }
            // 8 -> 4: the 128-bit halves of each input added, input 2i in
            // the low half and input 2i + 1 in the high half.
            let mut t = [_mm256_setzero_ps(); 4];
            for (i, t) in t.iter_mut().enumerate() {
                let (a, b) = (w[2 * i], w[2 * i + 1]);
                *t = _mm256_add_ps(_mm256_permute2f128_ps::<0x20>(a, b), _mm256_permute2f128_ps::<0x31>(a, b));
            }
            // 4 -> 2 -> 1 inside the 128-bit halves: pairs of lanes added.
            let pair =
                |a: __m256, b: __m256| _mm256_add_ps(_mm256_shuffle_ps::<0x88>(a, b), _mm256_shuffle_ps::<0xDD>(a, b));
            let x0 = pair(t[0], t[1]);
            let x1 = pair(t[2], t[3]);
            pair(x0, x1)
        }
    }
    #[inline(always)]
    fn transpose(self, rows: &mut [__m256]) {
        debug_assert_eq!(rows.len(), 8);
        // SAFETY: AVX is implied by the token.
        unsafe {
            let r: &mut [__m256; 8] = rows.try_into().expect("transpose needs exactly 8 rows");
            // 4 × 4 transposes inside the 128-bit halves, then the halves
            // exchanged.
            let mut t = [_mm256_setzero_ps(); 8];
            for i in 0..4 {
                t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
            }
            let mut u = [_mm256_setzero_ps(); 8];
            for i in 0..2 {
                let (a, b, c, d) = (t[4 * i], t[4 * i + 1], t[4 * i + 2], t[4 * i + 3]);
                u[4 * i] = _mm256_shuffle_ps::<0x44>(a, c);
                u[4 * i + 1] = _mm256_shuffle_ps::<0xEE>(a, c);
                u[4 * i + 2] = _mm256_shuffle_ps::<0x44>(b, d);
                u[4 * i + 3] = _mm256_shuffle_ps::<0xEE>(b, d);
            }
            for k in 0..4 {
                r[k] = _mm256_permute2f128_ps::<0x20>(u[k], u[4 + k]);
                r[4 + k] = _mm256_permute2f128_ps::<0x31>(u[k], u[4 + k]);
            }
        }
    }
    #[inline(always)]
    fn reduce_max(self, v: __m256) -> f32 {
        // SAFETY: AVX is implied by the token.
        unsafe {
            let s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_max_ss(s, _mm_shuffle_ps::<0b01>(s, s));
            _mm_cvtss_f32(s)
        }
    }
    #[inline(always)]
    fn reduce_min(self, v: __m256) -> f32 {
        // SAFETY: AVX is implied by the token.
        unsafe {
            let s = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_min_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_min_ss(s, _mm_shuffle_ps::<0b01>(s, s));
            _mm_cvtss_f32(s)
        }
    }
    #[inline(always)]
    fn to_array(self, v: __m256, out: &mut [f32; MAX_LANES]) {
        // SAFETY: `out` has room for 16 >= 8 values.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), v) }
    }
    #[inline(always)]
    unsafe fn compress(self, p: *mut f32, m: __m256, v: __m256) -> usize {
        // AVX2 has no compress instruction. The lane mask selects a
        // permutation from the table, and a full store writes the moved
        // lanes and 8 − count unspecified ones.
        // SAFETY: bits < 256 indexes the table, whose entries are 8 bytes;
        // the caller guarantees 8 writable values at p. AVX2 is implied by
        // the token.
        unsafe {
            let bits = _mm256_movemask_ps(m) as usize;
            let packed = _mm_loadl_epi64(COMPRESS_INDICES.as_ptr().add(bits).cast());
            _mm256_storeu_ps(p, _mm256_permutevar8x32_ps(v, _mm256_cvtepu8_epi32(packed)));
            bits.count_ones() as usize
        }
    }
    #[inline(always)]
    unsafe fn load_f16(self, p: *const u16) -> __m256 {
        // SAFETY: the caller guarantees 8 readable u16 at `p`; F16C is
        // implied by the token.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }
    #[inline(always)]
    unsafe fn load_bf16(self, p: *const u16) -> __m256 {
        // SAFETY: the caller guarantees 8 readable u16 at `p`; AVX2 is
        // implied by the token.
        unsafe {
            let wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast()));
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(wide))
        }
    }
    #[inline(always)]
    unsafe fn load_bf16_pairs(self, p: *const u16) -> (__m256, __m256) {
        // SAFETY: the caller guarantees 16 readable u16 at `p`; AVX2 is
        // implied by the token.
        unsafe {
            let pairs = _mm256_loadu_si256(p.cast());
            let even = _mm256_slli_epi32::<16>(pairs);
            let odd = _mm256_and_si256(pairs, _mm256_set1_epi32(0xffff_0000_u32 as i32));
            (_mm256_castsi256_ps(even), _mm256_castsi256_ps(odd))
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
    outline_with_features!(Avx2, "avx2,fma,f16c");
}
