//! f64 scalar references: the definition of what each kernel computes.
//!
//! They follow the same non-finite policy as the kernels, favour clarity
//! over speed, allocate freely, and back the property tests of every
//! instruction set.

pub mod attention;
pub mod entmax;
pub mod gemm;
pub mod glue;
pub mod moe;
pub mod softmax;
