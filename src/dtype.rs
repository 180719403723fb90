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
