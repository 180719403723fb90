//! Element-wise activations and the bias add over one f32 row: GELU (erf
//! and tanh forms), SiLU, SwiGLU, erf, tanh and `x + bias`.
//!
//! The bodies are written once against [`SimdF32`] and instantiated per
//! instruction set by `activation_kernels!` in the sibling files. Every body
//! takes one contiguous row; the driver in the `mlak` crate walks rows,
//! strides and threads. Outputs may alias inputs exactly (in place), since
//! each lane is loaded before it is stored.
//!
//! Non-finite policy: NaN gives NaN. GELU and SiLU map +inf to +inf and -inf
//! to 0 (their limits); SwiGLU multiplies SiLU(gate) by `up` with IEEE
//! rules, so 0·inf is NaN.

use crate::simd::special::{erf, normal_cdf, sigmoid, tanh};
use crate::simd::SimdF32;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;
pub mod scalar;

/// A lane-wise map of one vector. The row bodies take the map as a type,
/// not a closure, because closures do not inherit the `#[target_feature]`
/// set of the entry point and would not be inlined into it.
pub trait UnaryMap {
    fn apply<S: SimdF32>(s: S, x: S::V) -> S::V;
}

/// A lane-wise map of two vectors; see [`UnaryMap`].
pub trait BinaryMap {
    fn apply<S: SimdF32>(s: S, a: S::V, b: S::V) -> S::V;
}

/// Applies `F` lane-wise: `y[i] = F(x[i])` for `i < n`.
///
/// # Safety
///
/// `x[0 .. n]` must be readable and `y[0 .. n]` writable; `y` equals `x` or
/// does not overlap it.
#[inline(always)]
unsafe fn map_unary<S: SimdF32, F: UnaryMap>(s: S, x: *const f32, y: *mut f32, n: usize) {
    let l = S::LANES;
    let mut i = 0;
    // SAFETY: every access covers [i, i + l) with i + l <= n, or the tail
    // [i, n), inside the caller's rows.
    unsafe {
        while i + 2 * l <= n {
            let v0 = F::apply(s, s.load(x.add(i)));
            let v1 = F::apply(s, s.load(x.add(i + l)));
            s.store(y.add(i), v0);
            s.store(y.add(i + l), v1);
            i += 2 * l;
        }
        while i + l <= n {
            s.store(y.add(i), F::apply(s, s.load(x.add(i))));
            i += l;
        }
        if i < n {
            let v = s.load_tail(x.add(i), n - i, 0.0);
            s.store_tail(y.add(i), n - i, F::apply(s, v));
        }
    }
}

/// Applies `F` lane-wise to two rows: `y[i] = F(a[i], b[i])` for `i < n`.
///
/// # Safety
///
/// `a[0 .. n]` and `b[0 .. n]` must be readable and `y[0 .. n]` writable;
/// `y` equals `a` or `b`, or overlaps neither.
#[inline(always)]
unsafe fn map_binary<S: SimdF32, F: BinaryMap>(s: S, a: *const f32, b: *const f32, y: *mut f32, n: usize) {
    let l = S::LANES;
    let mut i = 0;
    // SAFETY: as in `map_unary`, for the three rows.
    unsafe {
        while i + l <= n {
            s.store(y.add(i), F::apply(s, s.load(a.add(i)), s.load(b.add(i))));
            i += l;
        }
        if i < n {
            let va = s.load_tail(a.add(i), n - i, 0.0);
            let vb = s.load_tail(b.add(i), n - i, 0.0);
            s.store_tail(y.add(i), n - i, F::apply(s, va, vb));
        }
    }
}

/// Maps -inf lanes of `x` to 0 in `y`: the limit of GELU and SiLU there,
/// where the formulas give −inf·0 = NaN.
#[inline(always)]
fn zero_at_neg_inf<S: SimdF32>(s: S, x: S::V, y: S::V) -> S::V {
    s.select(s.lt(x, s.splat(f32::MIN)), s.splat(0.0), y)
}

/// GELU, erf form: x·Φ(x), with Φ the standard normal CDF.
#[inline(always)]
pub fn gelu_erf<S: SimdF32>(s: S, x: S::V) -> S::V {
    zero_at_neg_inf(s, x, s.mul(x, normal_cdf(s, x)))
}

/// GELU, tanh form: x·(1 + tanh(u))/2 with u = √(2/π)·(x + 0.044715·x³),
/// evaluated as x·sigmoid(2u), which is the same function but does not
/// cancel for negative x.
#[inline(always)]
pub fn gelu_tanh<S: SimdF32>(s: S, x: S::V) -> S::V {
    // 2·√(2/π) and 2·√(2/π)·0.044715.
    const C1: f32 = 1.595_769;
    const C3: f32 = 0.071_354_82;
    let x2 = s.mul(x, x);
    let u2 = s.mul(x, s.fma(x2, s.splat(C3), s.splat(C1)));
    zero_at_neg_inf(s, x, s.mul(x, sigmoid(s, u2)))
}

/// SiLU (swish): x·sigmoid(x).
#[inline(always)]
pub fn silu<S: SimdF32>(s: S, x: S::V) -> S::V {
    zero_at_neg_inf(s, x, s.mul(x, sigmoid(s, x)))
}

macro_rules! row_fn {
    ($(#[$doc:meta])* $name:ident, $map:ident, $f:path) => {
        /// Marker type of the lane-wise map used by the row body below.
        pub struct $map;

        impl UnaryMap for $map {
            #[inline(always)]
            fn apply<S: SimdF32>(s: S, x: S::V) -> S::V {
                $f(s, x)
            }
        }

        $(#[$doc])*
        ///
        /// # Safety
        ///
        /// `x[0 .. n]` must be readable and `y[0 .. n]` writable; `y` equals
        /// `x` or does not overlap it.
        #[inline(always)]
        pub unsafe fn $name<S: SimdF32>(s: S, x: *const f32, y: *mut f32, n: usize) {
            // SAFETY: forwarded from the caller.
            unsafe { map_unary::<S, $map>(s, x, y, n) }
        }
    };
}

row_fn!(
    /// Computes `y = gelu_erf(x)` over one row.
    gelu_erf_row,
    GeluErfMap,
    gelu_erf
);
row_fn!(
    /// Computes `y = gelu_tanh(x)` over one row.
    gelu_tanh_row,
    GeluTanhMap,
    gelu_tanh
);
row_fn!(
    /// Computes `y = silu(x)` over one row.
    silu_row,
    SiluMap,
    silu
);
row_fn!(
    /// Computes `y = erf(x)` over one row with the vector
    /// [`erf`](crate::simd::special::erf).
    erf_row,
    ErfMap,
    erf
);
row_fn!(
    /// Computes `y = tanh(x)` over one row with the vector
    /// [`tanh`](crate::simd::special::tanh).
    tanh_row,
    TanhMap,
    tanh
);

/// SwiGLU lanes: silu(gate)·up.
pub struct SwigluMap;

impl BinaryMap for SwigluMap {
    #[inline(always)]
    fn apply<S: SimdF32>(s: S, gate: S::V, up: S::V) -> S::V {
        s.mul(silu(s, gate), up)
    }
}

/// Bias-add lanes: x + bias.
pub struct AddMap;

impl BinaryMap for AddMap {
    #[inline(always)]
    fn apply<S: SimdF32>(s: S, x: S::V, bias: S::V) -> S::V {
        s.add(x, bias)
    }
}

/// Computes `y = silu(gate)·up` (SwiGLU) over one row.
///
/// # Safety
///
/// `gate[0 .. n]` and `up[0 .. n]` must be readable and `y[0 .. n]`
/// writable; `y` equals `gate` or `up`, or overlaps neither.
#[inline(always)]
pub unsafe fn swiglu_row<S: SimdF32>(s: S, gate: *const f32, up: *const f32, y: *mut f32, n: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { map_binary::<S, SwigluMap>(s, gate, up, y, n) }
}

/// Computes `y = x + bias` over one row.
///
/// # Safety
///
/// `x[0 .. n]` and `bias[0 .. n]` must be readable and `y[0 .. n]`
/// writable; `y` equals `x` or overlaps neither input.
#[inline(always)]
pub unsafe fn bias_add_row<S: SimdF32>(s: S, x: *const f32, bias: *const f32, y: *mut f32, n: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { map_binary::<S, AddMap>(s, x, bias, y, n) }
}

/// Expands to the per-instruction-set entry points of this family: unary
/// rows `(x, y, n)` and binary rows `(a, b, y, n)`. The bodies are the
/// generic functions above; only the token and the `#[target_feature]` set
/// change.
macro_rules! activation_kernels {
    ($token:ty, $features:tt,
     unary { $($uname:ident => $ubody:ident),* $(,)? },
     binary { $($bname:ident => $bbody:ident),* $(,)? }) => {
        $(crate::activation::activation_kernels!(@unary $token, $features, $uname, $ubody);)*
        $(crate::activation::activation_kernels!(@binary $token, $features, $bname, $bbody);)*
    };
    (@unary $token:ty, [$($feature:literal),*], $name:ident, $body:ident) => {
        /// Row entry point of
        #[doc = concat!("[`", stringify!($body), "`](crate::activation::", stringify!($body), ").")]
        ///
        /// # Safety
        ///
        /// As for the generic body, and the CPU runs this instruction set.
        $(#[target_feature(enable = $feature)])*
        pub unsafe fn $name(x: *const f32, y: *mut f32, n: usize) {
            // SAFETY: the caller guarantees the ISA and the row contract.
            unsafe { crate::activation::$body(<$token>::new_unchecked(), x, y, n) }
        }
    };
    (@binary $token:ty, [$($feature:literal),*], $name:ident, $body:ident) => {
        /// Row entry point of
        #[doc = concat!("[`", stringify!($body), "`](crate::activation::", stringify!($body), ").")]
        ///
        /// # Safety
        ///
        /// As for the generic body, and the CPU runs this instruction set.
        $(#[target_feature(enable = $feature)])*
        pub unsafe fn $name(a: *const f32, b: *const f32, y: *mut f32, n: usize) {
            // SAFETY: the caller guarantees the ISA and the row contract.
            unsafe { crate::activation::$body(<$token>::new_unchecked(), a, b, y, n) }
        }
    };
}
pub(crate) use activation_kernels;
