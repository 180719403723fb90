//! The SIMD abstraction that every algorithm body is written against.
//!
//! An implementor is a zero-sized token for one instruction set. Holding a
//! token is the proof that the CPU runs that instruction set, which is why
//! the constructors are `unsafe`. The methods are `#[inline(always)]` so that
//! they dissolve into the `#[target_feature]` entry point that calls the
//! generic body, where the intrinsics are inlined with the right features.
//!
//! Each method documents lane semantics only where they differ between
//! instruction sets. NaN handling of `max` and `min` is one such case, so
//! the algorithm bodies track NaN with `is_nan` instead of relying on it.

/// Expands to the `SimdF32::outline` method of token `$token`, whose
/// outlined function enables the target features `$features`. The token
/// proves that the CPU runs them.
macro_rules! outline_with_features {
    ($token:ty, $features:literal) => {
        #[inline(always)]
        unsafe fn outline<B: super::Outlined<Self>>(self, body: B) -> B::Out {
            #[inline(never)]
            #[target_feature(enable = $features)]
            unsafe fn run<B: super::Outlined<$token>>(s: $token, body: B) -> B::Out {
                // SAFETY: the caller of `outline` meets the body's contract.
                unsafe { body.run(s) }
            }
            // SAFETY: the token proves that the CPU runs these features, and
            // the caller meets the body's contract.
            unsafe { run(self, body) }
        }
    };
}

pub mod scalar;
pub mod special;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;

/// Maximum lane count of any implementor, for stack buffers sized at
/// compile time.
pub const MAX_LANES: usize = 16;

/// A vector of `LANES` f32 values and the operations the kernels need.
///
/// # Safety
///
/// Implementors guarantee that every method is sound to call once a token
/// exists, given the pointer contracts stated on the method.
pub unsafe trait SimdF32: Copy {
    /// A vector of `LANES` f32 lanes.
    type V: Copy;
    /// A per-lane boolean mask as produced by the comparisons.
    type M: Copy;
    /// Number of f32 lanes in `V`.
    const LANES: usize;
    /// Instruction set name as used by `MLAK_ISA`.
    const NAME: &'static str;

    fn splat(self, x: f32) -> Self::V;

    /// Loads `LANES` values from `p`, which needs no alignment.
    ///
    /// # Safety
    ///
    /// `p .. p + LANES` must be readable.
    unsafe fn load(self, p: *const f32) -> Self::V;

    /// Stores `LANES` values to `p`, which needs no alignment.
    ///
    /// # Safety
    ///
    /// `p .. p + LANES` must be writable.
    unsafe fn store(self, p: *mut f32, v: Self::V);

    /// Loads the first `n < LANES` values from `p` and fills the other lanes
    /// with `fill`. Never touches memory past `p + n`.
    ///
    /// # Safety
    ///
    /// `p .. p + n` must be readable.
    unsafe fn load_tail(self, p: *const f32, n: usize, fill: f32) -> Self::V;

    /// Stores the first `n < LANES` lanes of `v` to `p`. Never touches memory
    /// past `p + n`.
    ///
    /// # Safety
    ///
    /// `p .. p + n` must be writable.
    unsafe fn store_tail(self, p: *mut f32, n: usize, v: Self::V);

    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    /// Lane-wise IEEE division `a / b`, correctly rounded.
    fn div(self, a: Self::V, b: Self::V) -> Self::V;
    /// Lane-wise absolute value: clears the sign bit, so NaN stays NaN.
    fn abs(self, a: Self::V) -> Self::V;
    /// Swaps each even lane with the odd lane after it: lanes (0 1 2 3 ..)
    /// become (1 0 3 2 ..). The one-lane scalar token returns `a` unchanged,
    /// so bodies that pair lanes must handle `LANES == 1` separately.
    fn swap_pairs(self, a: Self::V) -> Self::V;
    /// `a * b + c`, fused with one rounding on every vector level; the
    /// scalar level rounds twice.
    fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// Lane-wise maximum. The result for a NaN lane is unspecified.
    fn max(self, a: Self::V, b: Self::V) -> Self::V;
    /// Lane-wise minimum. The result for a NaN lane is unspecified.
    fn min(self, a: Self::V, b: Self::V) -> Self::V;
    /// Returns the f32 whose bit pattern is the bits of `a` shifted left by
    /// 23, which moves an integer held in the low mantissa bits of `a` into
    /// the exponent field.
    fn shift_into_exponent(self, a: Self::V) -> Self::V;
    /// Lane-wise IEEE square root, correctly rounded.
    fn sqrt(self, a: Self::V) -> Self::V;
    /// Splits a positive normal `a` into `(m, e)` with `a = m · 2^e`,
    /// `m` in [1, 2) and `e` an integer stored as f32. The result is
    /// unspecified for zero, negative, subnormal and non-finite lanes.
    fn split_exponent(self, a: Self::V) -> (Self::V, Self::V);

    fn lt(self, a: Self::V, b: Self::V) -> Self::M;
    fn gt(self, a: Self::V, b: Self::V) -> Self::M;
    fn is_nan(self, a: Self::V) -> Self::M;
    fn mask_or(self, a: Self::M, b: Self::M) -> Self::M;
    fn mask_none(self) -> Self::M;
    fn mask_any(self, m: Self::M) -> bool;
    /// Lane-wise `if m { a } else { b }`.
    fn select(self, m: Self::M, a: Self::V, b: Self::V) -> Self::V;

    fn reduce_add(self, v: Self::V) -> f32;
    /// Returns the vector whose lane i is the horizontal sum of `v[i]`, and
    /// 0 in the lanes at and past `v.len()`. Sums many vectors at once with
    /// a transpose-and-add tree, which costs a few operations per vector
    /// instead of a full [`reduce_add`](Self::reduce_add) each. The order of
    /// the additions differs from `reduce_add`. `v.len() <= LANES`.
    fn reduce_add_lanes(self, v: &[Self::V]) -> Self::V;
    /// Transposes the `LANES × LANES` matrix whose row i is `rows[i]` in
    /// place, so that lane j of `rows[i]` becomes lane i of `rows[j]`.
    /// `rows.len() == LANES`.
    fn transpose(self, rows: &mut [Self::V]);
    /// Horizontal maximum. Unspecified if a lane is NaN.
    fn reduce_max(self, v: Self::V) -> f32;
    /// Horizontal minimum. Unspecified if a lane is NaN.
    fn reduce_min(self, v: Self::V) -> f32;
    /// Copies the lanes into the first `LANES` entries of `out`.
    fn to_array(self, v: Self::V, out: &mut [f32; MAX_LANES]);

    /// Stores the lanes of `v` whose lane of `m` is set to `p[0 .. count]`,
    /// in lane order, and returns `count`. May also write unspecified
    /// values to `p[count .. LANES]`.
    ///
    /// # Safety
    ///
    /// `p .. p + LANES` must be writable.
    #[inline(always)]
    unsafe fn compress(self, p: *mut f32, m: Self::M, v: Self::V) -> usize {
        let (mut values, mut flags) = ([0.0f32; MAX_LANES], [0.0f32; MAX_LANES]);
        self.to_array(v, &mut values);
        self.to_array(self.select(m, self.splat(1.0), self.splat(0.0)), &mut flags);
        let mut count = 0;
        for lane in 0..Self::LANES {
            // SAFETY: count ≤ lane < LANES. Every lane is written at
            // p[count] and only selected lanes advance count.
            unsafe { *p.add(count) = values[lane] };
            count += usize::from(flags[lane] != 0.0);
        }
        count
    }

    /// Loads `LANES` IEEE binary16 values, given as bit patterns, from `p`
    /// and widens them exactly to f32 (subnormals, infinities and NaN
    /// included). `p` needs no alignment beyond that of `u16`.
    ///
    /// # Safety
    ///
    /// `p .. p + LANES` must be readable.
    unsafe fn load_f16(self, p: *const u16) -> Self::V;

    /// Loads `LANES` bfloat16 values, given as bit patterns, from `p` and
    /// widens them exactly to f32.
    ///
    /// # Safety
    ///
    /// `p .. p + LANES` must be readable.
    unsafe fn load_bf16(self, p: *const u16) -> Self::V;

    /// Loads `2 · LANES` bfloat16 values, given as bit patterns, from `p`
    /// and widens them exactly to f32, split by parity: lane t of the first
    /// vector is element `2t`, lane t of the second is element `2t + 1`.
    /// The split needs only a shift and a mask of each 32-bit pair, no lane
    /// shuffle, so a caller that can work in this order streams bf16 with
    /// half the instructions of [`load_bf16`](Self::load_bf16).
    ///
    /// # Safety
    ///
    /// `p .. p + 2 · LANES` must be readable.
    unsafe fn load_bf16_pairs(self, p: *const u16) -> (Self::V, Self::V);

    /// Hints that the cache line holding `p` will be read soon. Never
    /// faults, whatever `p` is; a no-op where the instruction set has no
    /// hint.
    #[inline(always)]
    fn prefetch(self, p: *const u8) {
        let _ = p;
    }

    /// Hints like [`prefetch`](Self::prefetch), with the hint for the
    /// second-level cache (x86 PREFETCHT1). Far-ahead prefetches into L2
    /// keep more lines in flight than into L1, whose few miss buffers they
    /// would otherwise fill. Never faults, whatever `p` is; a no-op where
    /// the instruction set has no hint.
    #[inline(always)]
    fn prefetch_l2(self, p: *const u8) {
        let _ = p;
    }

    /// Runs `body` in a function of its own, compiled for this instruction
    /// set and never inlined into the caller. A hot loop inlined into a
    /// large kernel shares the register allocation of the whole kernel:
    /// LLVM then keeps constants of the surrounding code in registers
    /// across the loop and spills the loop's accumulators instead. A call
    /// costs a few cycles, so the body should run for hundreds.
    ///
    /// # Safety
    ///
    /// The contract of `body`'s [`Outlined::run`].
    unsafe fn outline<B: Outlined<Self>>(self, body: B) -> B::Out;
}

/// A computation that [`SimdF32::outline`] runs out of line. The
/// implementation of `run` is `#[inline(always)]`, so that it dissolves into
/// the outlined function with that function's target features.
pub trait Outlined<S: SimdF32> {
    /// The result of the computation.
    type Out;

    /// Runs the computation.
    ///
    /// # Safety
    ///
    /// Stated by the implementor: usually that the pointers in the body
    /// cover the ranges it reads and writes.
    unsafe fn run(self, s: S) -> Self::Out;
}

/// Widens one IEEE binary16 bit pattern exactly to f32.
#[inline(always)]
pub fn f16_bits_to_f32(h: u16) -> f32 {
    f32::from_bits(f16_bits_to_f32_bits(u32::from(h)))
}

/// Bit-level f16 to f32 widening, shared by the scalar and NEON tokens.
///
/// The exponent and mantissa are shifted into f32 position and scaled by
/// 2^112 (the difference of the exponent biases, 127 − 15), which also
/// normalizes subnormals exactly. Infinity and NaN get the all-ones f32
/// exponent instead.
#[inline(always)]
pub(crate) fn f16_bits_to_f32_bits(h: u32) -> u32 {
    let sign = (h & 0x8000) << 16;
    let magnitude = (h & 0x7fff) << 13;
    let widened = if h & 0x7c00 == 0x7c00 {
        magnitude | 0x7f80_0000
    } else {
        (f32::from_bits(magnitude) * f32::from_bits(0x7780_0000)).to_bits()
    };
    widened | sign
}

/// Upper clamp of [`exp`]: above it the result is +inf. 127.5·ln 2 rounded
/// down, so that the scale exponent stays at most 127.
pub const EXP_HI: f32 = 88.376_26;
/// Lower clamp of [`exp`]: below it the result is 0. It is ln(2^-126), the
/// smallest normal f32 result.
pub const EXP_LO: f32 = -87.336_55;
/// Bound on the error of [`exp`] on `[EXP_LO, EXP_HI]`, in units in the last
/// place of the correctly rounded f32 result. The test suite checks it on
/// every 61st f32 of the range under each instruction set and measured at
/// most 1 ulp there. The bound keeps 1 ulp of margin for the points between.
pub const EXP_MAX_ULP: u32 = 2;

/// Computes e^x lane-wise.
///
/// Method: x = n·ln 2 + r with n = round(x·log2 e) and |r| ≤ ln 2 / 2, the
/// reduction in two FMA steps with ln 2 split into a high and low part, and
/// e^r from a degree-7 polynomial whose coefficients are the minimax fit of
/// the Cephes library's `expf`. The result is exact to [`EXP_MAX_ULP`] on
/// `[EXP_LO, EXP_HI]`.
///
/// Outside that range: x < `EXP_LO` (including -inf) gives 0, although the
/// exact value is a subnormal down to x = -103.97. x > `EXP_HI` (including
/// +inf) gives +inf, although the exact value is finite up to x = 88.72.
/// NaN gives NaN.
#[inline(always)]
pub fn exp<S: SimdF32>(s: S, x: S::V) -> S::V {
    let xc = s.min(s.max(x, s.splat(EXP_LO)), s.splat(EXP_HI));
    let y = exp_in_range(s, xc);
    let y = s.select(s.lt(x, s.splat(EXP_LO)), s.splat(0.0), y);
    let y = s.select(s.gt(x, s.splat(EXP_HI)), s.splat(f32::INFINITY), y);
    s.select(s.is_nan(x), x, y)
}

/// Computes e^x lane-wise for x <= 0, the arguments of softmax after the
/// maximum is subtracted. Same accuracy as [`exp`] and x < `EXP_LO`
/// (including -inf) gives 0, with two fewer range checks per vector.
/// Positive or NaN lanes give unspecified values.
#[inline(always)]
pub fn exp_nonpositive<S: SimdF32>(s: S, x: S::V) -> S::V {
    let y = exp_in_range(s, s.max(x, s.splat(EXP_LO)));
    s.select(s.lt(x, s.splat(EXP_LO)), s.splat(0.0), y)
}

/// Computes the body of [`exp`] for x already clamped to `[EXP_LO, EXP_HI]`.
#[inline(always)]
fn exp_in_range<S: SimdF32>(s: S, xc: S::V) -> S::V {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 = LN2_HI + LN2_LO, with LN2_HI holding few enough mantissa bits
    // that n * LN2_HI is exact for |n| <= 128.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;

    // Adding 1.5·2^23 rounds x·log2 e to the integer n (ties to even) and
    // leaves n + 127 in the low mantissa bits of t, because MAGIC also
    // carries the exponent bias 127. Shifting those bits by 23 builds 2^n.
    const MAGIC: f32 = 12_583_039.0; // 1.5 * 2^23 + 127
    let t = s.fma(xc, s.splat(LOG2E), s.splat(MAGIC));
    let n = s.sub(t, s.splat(MAGIC));
    let scale = s.shift_into_exponent(t);
    let r = s.fma(n, s.splat(-LN2_HI), xc);
    let r = s.fma(n, s.splat(-LN2_LO), r);

    let mut p = s.splat(1.987_569_1e-4);
    p = s.fma(p, r, s.splat(1.398_199_9e-3));
    p = s.fma(p, r, s.splat(8.333_452e-3));
    p = s.fma(p, r, s.splat(4.166_579_6e-2));
    p = s.fma(p, r, s.splat(1.666_666_5e-1));
    p = s.fma(p, r, s.splat(5.000_000_6e-1));
    let r2 = s.mul(r, r);
    let y = s.add(s.fma(p, r2, r), s.splat(1.0));
    s.mul(y, scale)
}

/// Computes ln x lane-wise for positive normal finite x.
///
/// Method: x = m · 2^e with m in [√½, √2), then ln m = 2·atanh(t) with
/// t = (m − 1)/(m + 1), |t| ≤ 0.1716, from its Taylor series to t^9, whose
/// truncation error is below 2e-9 relative. Zero, negative, subnormal and
/// non-finite lanes give unspecified values; callers mask them.
#[inline(always)]
pub fn ln<S: SimdF32>(s: S, x: S::V) -> S::V {
    let (m, e) = s.split_exponent(x);
    let big = s.gt(m, s.splat(std::f32::consts::SQRT_2));
    let m = s.select(big, s.mul(m, s.splat(0.5)), m);
    let e = s.select(big, s.add(e, s.splat(1.0)), e);
    let one = s.splat(1.0);
    let t = s.div(s.sub(m, one), s.add(m, one));
    let t2 = s.mul(t, t);
    let mut p = s.splat(2.0 / 9.0);
    p = s.fma(p, t2, s.splat(2.0 / 7.0));
    p = s.fma(p, t2, s.splat(2.0 / 5.0));
    p = s.fma(p, t2, s.splat(2.0 / 3.0));
    p = s.fma(p, t2, s.splat(2.0));
    s.fma(e, s.splat(std::f32::consts::LN_2), s.mul(t, p))
}

/// Computes ln(1 + q) lane-wise for q > −1 with 1 + q normal, accurate
/// also for |q| below f32 epsilon: with v = 1 + q rounded, the term
/// (q − (v − 1))/v restores what the rounding of v lost.
#[inline(always)]
pub fn ln_1p<S: SimdF32>(s: S, q: S::V) -> S::V {
    let one = s.splat(1.0);
    let v = s.add(one, q);
    let lost = s.sub(q, s.sub(v, one));
    s.add(ln(s, v), s.div(lost, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads the lanes `values[0 .. LANES]`.
    fn vector<S: SimdF32>(s: S, values: &[f32]) -> S::V {
        assert!(values.len() >= S::LANES);
        // SAFETY: values has at least LANES readable elements.
        unsafe { s.load(values.as_ptr()) }
    }

    fn lanes<S: SimdF32>(s: S, v: S::V) -> Vec<f32> {
        let mut out = [0.0; MAX_LANES];
        s.to_array(v, &mut out);
        out[..S::LANES].to_vec()
    }

    fn check_transpose<S: SimdF32>(s: S) {
        let l = S::LANES;
        let values: Vec<f32> = (0..l * l).map(|x| x as f32).collect();
        let mut rows: Vec<S::V> = (0..l).map(|i| vector(s, &values[i * l..])).collect();
        s.transpose(&mut rows);
        for (i, row) in rows.iter().enumerate() {
            let got = lanes(s, *row);
            for (j, &x) in got.iter().enumerate() {
                assert_eq!(x, (j * l + i) as f32, "transpose: lane {j} of row {i}, LANES = {l}");
            }
        }
    }

    fn check_reduce_add_lanes<S: SimdF32>(s: S) {
        let l = S::LANES;
        for count in 0..=l {
            // Row i has 100·i + j in lane j, so its sum is exact in f32.
            let values: Vec<f32> = (0..l * l).map(|x| (100 * (x / l) + x % l) as f32).collect();
            let rows: Vec<S::V> = (0..count).map(|i| vector(s, &values[i * l..])).collect();
            let got = lanes(s, s.reduce_add_lanes(&rows));
            for (i, &x) in got.iter().enumerate() {
                let want = if i < count { (0..l).map(|j| (100 * i + j) as f32).sum() } else { 0.0 };
                assert_eq!(x, want, "reduce_add_lanes: lane {i} of {count} vectors, LANES = {l}");
            }
        }
    }

    fn check_bf16_pairs<S: SimdF32>(s: S) {
        let l = S::LANES;
        // Distinct values with at most 7 significant bits, exact in bf16.
        let values: Vec<f32> = (0..2 * l).map(|t| if t % 2 == 0 { t as f32 + 0.5 } else { -(t as f32) - 0.25 }).collect();
        let bits: Vec<u16> = values.iter().map(|x| (x.to_bits() >> 16) as u16).collect();
        // SAFETY: bits has 2 · LANES readable elements.
        let (even, odd) = unsafe { s.load_bf16_pairs(bits.as_ptr()) };
        for (t, &x) in lanes(s, even).iter().enumerate() {
            assert_eq!(x, values[2 * t], "load_bf16_pairs: even lane {t}, LANES = {l}");
        }
        for (t, &x) in lanes(s, odd).iter().enumerate() {
            assert_eq!(x, values[2 * t + 1], "load_bf16_pairs: odd lane {t}, LANES = {l}");
        }
    }

    fn check_compress<S: SimdF32>(s: S) {
        let l = S::LANES;
        let values: Vec<f32> = (0..l).map(|j| j as f32 + 1.0).collect();
        let v = vector(s, &values);
        for bits in 0..1usize << l {
            let flags: Vec<f32> = (0..l).map(|j| ((bits >> j) & 1) as f32).collect();
            let m = s.gt(vector(s, &flags), s.splat(0.0));
            let mut out = [f32::NAN; MAX_LANES];
            // SAFETY: out has MAX_LANES ≥ LANES writable entries.
            let count = unsafe { s.compress(out.as_mut_ptr(), m, v) };
            let want: Vec<f32> = (0..l).filter(|j| (bits >> j) & 1 == 1).map(|j| values[j]).collect();
            assert_eq!(count, want.len(), "compress: count for mask {bits:#x}, LANES = {l}");
            for (i, (&x, &y)) in out.iter().zip(&want).enumerate() {
                assert_eq!(x, y, "compress: entry {i} for mask {bits:#x}, LANES = {l}");
            }
        }
    }

    fn check_all<S: SimdF32>(s: S) {
        check_transpose(s);
        check_reduce_add_lanes(s);
        check_bf16_pairs(s);
        check_compress(s);
    }

    #[test]
    fn scalar_lane_shuffles() {
        // SAFETY: scalar code runs on every CPU.
        check_all(unsafe { scalar::Scalar::new_unchecked() });
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_lane_shuffles() {
        match avx2::Avx2::detect() {
            Some(s) => check_all(s),
            None => eprintln!("SKIPPED: avx2_lane_shuffles: avx2 not supported by this CPU"),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_lane_shuffles() {
        match avx512::Avx512::detect() {
            Some(s) => check_all(s),
            None => eprintln!("SKIPPED: avx512_lane_shuffles: avx512 not supported by this CPU"),
        }
    }

    #[cfg(target_arch = "aarch64")]
    #[test]
    fn neon_lane_shuffles() {
        match neon::Neon::detect() {
            Some(s) => check_all(s),
            None => eprintln!("SKIPPED: neon_lane_shuffles: neon not supported by this CPU"),
        }
    }
}
