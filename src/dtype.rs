//! Element types accepted by the mixed-precision entry points.

/// Element type of an input tensor. Arithmetic is f32 in every case: f16
/// and bf16 inputs are widened exactly.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// IEEE 754 binary32 (`float`).
    F32 = 0,
    /// IEEE 754 binary16, passed as `uint16_t` bit patterns.
    F16 = 1,
    /// bfloat16 (the upper half of a binary32), passed as `uint16_t`.
    Bf16 = 2,
}

impl Dtype {
    /// Returns the dtype with the given numeric code, if there is one.
    pub fn from_code(code: u32) -> Option<Dtype> {
        match code {
            0 => Some(Dtype::F32),
            1 => Some(Dtype::F16),
            2 => Some(Dtype::Bf16),
            _ => None,
        }
    }

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::Bf16 => 2,
        }
    }

    /// The dtype's name, as used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
        }
    }
}

/// Element types that the mixed-precision safe API accepts as input: f32,
/// `half::f16` and `half::bf16`.
pub trait Element: Copy + sealed::Sealed {
    /// The matching [`Dtype`].
    const DTYPE: Dtype;
}

impl Element for f32 {
    const DTYPE: Dtype = Dtype::F32;
}
impl Element for half::f16 {
    const DTYPE: Dtype = Dtype::F16;
}
impl Element for half::bf16 {
    const DTYPE: Dtype = Dtype::Bf16;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
}

/// Widens `n` elements of type `dtype` at `src` into `dst[0 .. n]`.
///
/// # Safety
///
/// `src` must address `n` readable, aligned elements of `dtype`.
pub(crate) unsafe fn widen_row(dtype: Dtype, src: *const u8, dst: &mut [f32]) {
    use half::slice::HalfFloatSliceExt;
    let n = dst.len();
    // SAFETY: the caller guarantees n aligned elements of `dtype` at src.
    unsafe {
        match dtype {
            Dtype::F32 => dst.copy_from_slice(std::slice::from_raw_parts(src.cast::<f32>(), n)),
            Dtype::F16 => std::slice::from_raw_parts(src.cast::<half::f16>(), n).convert_to_f32_slice(dst),
            Dtype::Bf16 => std::slice::from_raw_parts(src.cast::<half::bf16>(), n).convert_to_f32_slice(dst),
        }
    }
}
