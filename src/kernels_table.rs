//! The per-level kernel tables that dispatch selects between. Each kernel
//! family contributes one sub-table, defined next to its driver.

use crate::dispatch::Isa;
use crate::glue::GlueKernels;
use crate::softmax::SoftmaxKernels;

/// Function pointers for every kernel at one dispatch level.
pub(crate) struct Kernels {
    pub isa: Isa,
    pub softmax: SoftmaxKernels,
    pub glue: GlueKernels,
}

static SCALAR: Kernels = Kernels { isa: Isa::Scalar, softmax: SoftmaxKernels::SCALAR, glue: GlueKernels::SCALAR };

#[cfg(target_arch = "x86_64")]
static AVX2: Kernels = Kernels { isa: Isa::Avx2, softmax: SoftmaxKernels::AVX2, glue: GlueKernels::AVX2 };

#[cfg(target_arch = "x86_64")]
static AVX512: Kernels = Kernels { isa: Isa::Avx512, softmax: SoftmaxKernels::AVX512, glue: GlueKernels::AVX512 };

#[cfg(target_arch = "aarch64")]
static NEON: Kernels = Kernels { isa: Isa::Neon, softmax: SoftmaxKernels::NEON, glue: GlueKernels::NEON };

/// Returns the table for `isa`. Callers check `isa_supported` first; a level
/// that this build does not contain maps to the scalar table.
pub(crate) fn table_for(isa: Isa) -> &'static Kernels {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => &AVX2,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => &AVX512,
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => &NEON,
        _ => &SCALAR,
    }
}
