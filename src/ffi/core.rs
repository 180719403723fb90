//! Library-wide exports: version, status strings, errors, dispatch control
//! and threading.

use super::guard;
use crate::dispatch::{self, Isa};
use crate::error::{last_error_ptr, Error, Status};
use crate::threads;
use std::ffi::{c_char, c_int, CStr};

/// CPU feature bits returned by `mlak_cpu_features`.
pub const MLAK_CPU_AVX2: u64 = 0x1;
pub const MLAK_CPU_FMA: u64 = 0x2;
pub const MLAK_CPU_F16C: u64 = 0x4;
pub const MLAK_CPU_AVX512F: u64 = 0x8;
pub const MLAK_CPU_AVX512BW: u64 = 0x10;
pub const MLAK_CPU_AVX512DQ: u64 = 0x20;
pub const MLAK_CPU_AVX512VL: u64 = 0x40;
pub const MLAK_CPU_AVX512_BF16: u64 = 0x80;
pub const MLAK_CPU_AVX512_FP16: u64 = 0x100;
pub const MLAK_CPU_AVX512_VNNI: u64 = 0x200;
pub const MLAK_CPU_AVX_VNNI: u64 = 0x400;
pub const MLAK_CPU_AMX_TILE: u64 = 0x800;
pub const MLAK_CPU_AMX_BF16: u64 = 0x1000;
pub const MLAK_CPU_AMX_INT8: u64 = 0x2000;
pub const MLAK_CPU_NEON: u64 = 0x1_0000_0000;
pub const MLAK_CPU_NEON_FP16: u64 = 0x2_0000_0000;
pub const MLAK_CPU_NEON_BF16: u64 = 0x4_0000_0000;
pub const MLAK_CPU_NEON_DOTPROD: u64 = 0x8_0000_0000;

/// Returns the library version as a static NUL-terminated string, such as
/// "0.1.0".
#[no_mangle]
pub extern "C" fn mlak_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Returns a static description of a status code; unknown codes give
/// "unknown status".
#[no_mangle]
pub extern "C" fn mlak_status_string(status: c_int) -> *const c_char {
    let text: &'static str = match Status::from_code(status) {
        Some(Status::Ok) => "success\0",
        Some(Status::NullPointer) => "null pointer argument\0",
        Some(Status::InvalidArgument) => "invalid argument\0",
        Some(Status::UnsupportedIsa) => "unsupported instruction set\0",
        Some(Status::AllocationFailed) => "allocation failed\0",
        Some(Status::Internal) => "internal error\0",
        None => "unknown status\0",
    };
    text.as_ptr().cast()
}

/// Returns the message of the most recent failed call on this thread: which
/// argument, its value and the rule it broke. Empty before the first
/// failure; a successful call does not clear it. The pointer is valid until
/// the next mlak call on this thread.
#[no_mangle]
pub extern "C" fn mlak_last_error() -> *const c_char {
    last_error_ptr()
}

/// Writes the dispatch level that calls on this thread use now.
///
/// Fails with `MLAK_STATUS_UNSUPPORTED_ISA` when `MLAK_ISA` names an unknown
/// level or one this CPU lacks and no `mlak_set_isa` has overridden it.
#[no_mangle]
pub extern "C" fn mlak_get_isa(out: *mut Isa) -> Status {
    guard(|| {
        crate::validate::pointer("out", out, 1)?;
        let isa = dispatch::active_isa()?;
        // SAFETY: `out` was checked to be non-NULL and aligned.
        unsafe { out.write(isa) };
        Ok(())
    })
}

fn isa_arg(isa: u32) -> Result<Isa, Error> {
    Isa::from_code(isa).ok_or_else(|| {
        Error::new(Status::UnsupportedIsa, format!("isa = {isa} is not a mlak_isa value; valid values are 0 to 3"))
    })
}

/// Caps dispatch for the whole process at `isa` (a `mlak_isa` value),
/// overriding `MLAK_ISA`. Fails with `MLAK_STATUS_UNSUPPORTED_ISA` when the
/// value is unknown or the CPU lacks the level; dispatch is then unchanged.
#[no_mangle]
pub extern "C" fn mlak_set_isa(isa: u32) -> Status {
    guard(|| dispatch::set_isa(isa_arg(isa)?))
}

/// As `mlak_set_isa`, with the level given by its name: "scalar", "avx2",
/// "avx512" or "neon".
#[no_mangle]
pub extern "C" fn mlak_set_isa_by_name(name: *const c_char) -> Status {
    guard(|| {
        if name.is_null() {
            return Err(Error::new(Status::NullPointer, "name is NULL but must be a NUL-terminated string"));
        }
        // SAFETY: the caller passes a NUL-terminated string, checked non-NULL.
        let text = unsafe { CStr::from_ptr(name) }.to_string_lossy();
        let isa = Isa::from_name(&text).ok_or_else(|| {
            Error::new(
                Status::UnsupportedIsa,
                format!("name = {text:?} is not a known instruction set; use one of scalar, avx2, avx512, neon"),
            )
        })?;
        dispatch::set_isa(isa)
    })
}

/// Returns the best level this CPU runs.
#[no_mangle]
pub extern "C" fn mlak_best_isa() -> Isa {
    dispatch::best_isa()
}

/// Returns whether this CPU runs the level `isa` (a `mlak_isa` value);
/// false for unknown values.
#[no_mangle]
pub extern "C" fn mlak_isa_supported(isa: u32) -> bool {
    Isa::from_code(isa).is_some_and(dispatch::isa_supported)
}

/// Returns the static name of a `mlak_isa` value, or "unknown".
#[no_mangle]
pub extern "C" fn mlak_isa_name(isa: u32) -> *const c_char {
    let name: &'static str = match Isa::from_code(isa) {
        Some(Isa::Scalar) => "scalar\0",
        Some(Isa::Avx2) => "avx2\0",
        Some(Isa::Avx512) => "avx512\0",
        Some(Isa::Neon) => "neon\0",
        None => "unknown\0",
    };
    name.as_ptr().cast()
}

/// Returns the level of the kernels that the most recent kernel call on
/// this thread ran, or -1 before the first one. Tests use it to prove that
/// a forced level really ran.
#[no_mangle]
pub extern "C" fn mlak_last_dispatched_isa() -> i32 {
    dispatch::last_dispatched_isa().map_or(-1, |isa| isa as i32)
}

/// Returns the detected CPU feature bits, a set of `MLAK_CPU_*` values.
#[no_mangle]
pub extern "C" fn mlak_cpu_features() -> u64 {
    dispatch::cpu_features()
}

/// Sets the number of threads large calls use; 0 restores the default,
/// which is `MLAK_NUM_THREADS` if set, else the number of available cores.
/// A caller that runs many threads of its own should set 1. The extra
/// threads persist between calls, poll for work for 200 µs after each
/// call, then sleep.
#[no_mangle]
pub extern "C" fn mlak_set_num_threads(n: usize) {
    threads::set_num_threads(n);
}

/// Writes the number of threads large calls use. Fails with
/// `MLAK_STATUS_INVALID_ARGUMENT` when `MLAK_NUM_THREADS` is not a positive
/// integer and no `mlak_set_num_threads` has overridden it.
#[no_mangle]
pub extern "C" fn mlak_get_num_threads(out: *mut usize) -> Status {
    guard(|| {
        crate::validate::pointer("out", out, 1)?;
        let n = threads::num_threads()?;
        // SAFETY: `out` was checked to be non-NULL and aligned.
        unsafe { out.write(n) };
        Ok(())
    })
}
