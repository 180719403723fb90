//! The per-level kernel tables that dispatch selects between. Each kernel
//! family contributes one sub-table, defined next to its driver, with
//! `SCALAR`, `AVX2`, `AVX512` and `NEON` constants.

use crate::attention::AttentionKernels;
use crate::dispatch::Isa;
use crate::entmax::EntmaxKernels;
use crate::gemm::GemmKernels;
use crate::glue::GlueKernels;
use crate::moe::MoeKernels;
use crate::softmax::SoftmaxKernels;

/// Declares `Kernels` with one field per family and builds its table for
/// every level this target compiles.
macro_rules! kernel_tables {
    ($($field:ident: $family:ident),* $(,)?) => {
        /// Function pointers for every kernel at one dispatch level.
        pub(crate) struct Kernels {
            pub isa: Isa,
            $(pub $field: $family,)*
        }

        static SCALAR: Kernels = Kernels { isa: Isa::Scalar, $($field: $family::SCALAR,)* };

        #[cfg(target_arch = "x86_64")]
        static AVX2: Kernels = Kernels { isa: Isa::Avx2, $($field: $family::AVX2,)* };

        #[cfg(target_arch = "x86_64")]
        static AVX512: Kernels = Kernels { isa: Isa::Avx512, $($field: $family::AVX512,)* };

        #[cfg(target_arch = "aarch64")]
        static NEON: Kernels = Kernels { isa: Isa::Neon, $($field: $family::NEON,)* };
    };
}

kernel_tables! {
    softmax: SoftmaxKernels,
    gemm: GemmKernels,
    entmax: EntmaxKernels,
    moe: MoeKernels,
    attention: AttentionKernels,
    glue: GlueKernels,
}

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
