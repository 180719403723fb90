//! Runtime CPU-feature detection and the cached kernel table.
//!
//! Detection runs once, on the first call that needs a kernel. The chosen
//! table is cached behind an atomic pointer, so later calls cost one load.
//! `MLAK_ISA` caps the level at start-up and `set_isa` caps it at run time.

use crate::error::{Error, Result, Status};
use crate::kernels_table::{table_for, Kernels};
use std::cell::Cell;
use std::sync::atomic::{AtomicPtr, Ordering};
use crate::once::RaceOnce;

/// Dispatch levels, ordered from the most portable.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// Portable scalar code; runs everywhere.
    Scalar = 0,
    /// x86_64 with AVX2, FMA and F16C.
    Avx2 = 1,
    /// x86_64 with AVX-512 F, BW, DQ and VL (plus AVX2, FMA and F16C).
    Avx512 = 2,
    /// AArch64 with NEON.
    Neon = 3,
}

impl Isa {
    /// All levels, in order.
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon];

    /// The level's name, as accepted by `MLAK_ISA`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// Parses a level name as accepted by `MLAK_ISA`.
    pub fn from_name(name: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|isa| isa.name() == name)
    }

    /// Returns the level with the given numeric code, if there is one.
    pub fn from_code(code: u32) -> Option<Isa> {
        Isa::ALL.get(code as usize).copied()
    }
}

/// CPU feature bits reported by [`cpu_features`].
pub mod feature {
    pub use crate::ffi::{
        MLAK_CPU_AMX_BF16 as AMX_BF16, MLAK_CPU_AMX_INT8 as AMX_INT8, MLAK_CPU_AMX_TILE as AMX_TILE,
        MLAK_CPU_AVX2 as AVX2, MLAK_CPU_AVX512BW as AVX512BW, MLAK_CPU_AVX512DQ as AVX512DQ,
        MLAK_CPU_AVX512F as AVX512F, MLAK_CPU_AVX512VL as AVX512VL, MLAK_CPU_AVX512_BF16 as AVX512_BF16,
        MLAK_CPU_AVX512_FP16 as AVX512_FP16, MLAK_CPU_AVX512_VNNI as AVX512_VNNI, MLAK_CPU_AVX_VNNI as AVX_VNNI,
        MLAK_CPU_F16C as F16C, MLAK_CPU_FMA as FMA, MLAK_CPU_NEON as NEON, MLAK_CPU_NEON_BF16 as NEON_BF16,
        MLAK_CPU_NEON_DOTPROD as NEON_DOTPROD, MLAK_CPU_NEON_FP16 as NEON_FP16,
    };

    /// Names of the bits, in bit order, for logs and tests.
    pub const NAMES: [(u64, &str); 18] = [
        (AVX2, "avx2"),
        (FMA, "fma"),
        (F16C, "f16c"),
        (AVX512F, "avx512f"),
        (AVX512BW, "avx512bw"),
        (AVX512DQ, "avx512dq"),
        (AVX512VL, "avx512vl"),
        (AVX512_BF16, "avx512_bf16"),
        (AVX512_FP16, "avx512_fp16"),
        (AVX512_VNNI, "avx512_vnni"),
        (AVX_VNNI, "avx_vnni"),
        (AMX_TILE, "amx_tile"),
        (AMX_BF16, "amx_bf16"),
        (AMX_INT8, "amx_int8"),
        (NEON, "neon"),
        (NEON_FP16, "neon_fp16"),
        (NEON_BF16, "neon_bf16"),
        (NEON_DOTPROD, "neon_dotprod"),
    ];
}

#[cfg(target_arch = "x86_64")]
fn detect_features() -> u64 {
    use std::arch::is_x86_feature_detected as has;
    let mut f = 0;
    let pairs = [
        (has!("avx2"), feature::AVX2),
        (has!("fma"), feature::FMA),
        (has!("f16c"), feature::F16C),
        (has!("avx512f"), feature::AVX512F),
        (has!("avx512bw"), feature::AVX512BW),
        (has!("avx512dq"), feature::AVX512DQ),
        (has!("avx512vl"), feature::AVX512VL),
        (has!("avx512bf16"), feature::AVX512_BF16),
        (has!("avx512fp16"), feature::AVX512_FP16),
        (has!("avx512vnni"), feature::AVX512_VNNI),
        (has!("avxvnni"), feature::AVX_VNNI),
    ];
    for (present, bit) in pairs {
        if present {
            f |= bit;
        }
    }
    f | detect_amx()
}

/// Reads the AMX bits of CPUID leaf 7 (EDX bits 22, 24 and 25), because
/// std's AMX detection is still unstable. They report CPU support only; the
/// tiles also need the OS permission that `arch_prctl` grants per process.
#[cfg(target_arch = "x86_64")]
fn detect_amx() -> u64 {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    // Leaf 7 is read only when the maximum leaf reported by leaf 0 has it.
    if __cpuid(0).eax < 7 {
        return 0;
    }
    let edx = __cpuid_count(7, 0).edx;
    let mut f = 0;
    let pairs = [(22, feature::AMX_BF16), (24, feature::AMX_TILE), (25, feature::AMX_INT8)];
    for (bit_index, bit) in pairs {
        if edx & (1 << bit_index) != 0 {
            f |= bit;
        }
    }
    f
}

/// Returns whether CPUID leaf 0 names the vendor "GenuineIntel".
#[cfg(target_arch = "x86_64")]
fn detect_intel() -> bool {
    let id = std::arch::x86_64::__cpuid(0);
    let mut vendor = [0u8; 12];
    for (i, word) in [id.ebx, id.edx, id.ecx].into_iter().enumerate() {
        vendor[4 * i..4 * i + 4].copy_from_slice(&word.to_le_bytes());
    }
    &vendor == b"GenuineIntel"
}

#[cfg(not(target_arch = "x86_64"))]
fn detect_intel() -> bool {
    false
}

#[cfg(target_arch = "aarch64")]
fn detect_features() -> u64 {
    use std::arch::is_aarch64_feature_detected as has;
    let mut f = 0;
    let pairs = [
        (has!("neon"), feature::NEON),
        (has!("fp16"), feature::NEON_FP16),
        (has!("bf16"), feature::NEON_BF16),
        (has!("dotprod"), feature::NEON_DOTPROD),
    ];
    for (present, bit) in pairs {
        if present {
            f |= bit;
        }
    }
    f
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn detect_features() -> u64 {
    0
}

/// Returns whether this CPU runs the given level.
pub fn isa_supported(isa: Isa) -> bool {
    supported_by(detected().features, isa)
}

/// Returns the best level this CPU runs.
pub fn best_isa() -> Isa {
    detected().best
}

/// Returns the detected CPU feature bits (see [`feature`]).
pub fn cpu_features() -> u64 {
    detected().features
}

/// Returns whether the CPU is an Intel x86-64 CPU. Attention decode picks
/// its prefetch scheme by vendor.
pub(crate) fn cpu_is_intel() -> bool {
    detected().intel
}

struct Detected {
    features: u64,
    intel: bool,
    best: Isa,
    /// The level chosen from `MLAK_ISA`, or why the variable is rejected.
    initial: std::result::Result<Isa, String>,
}

fn detected() -> &'static Detected {
    static DETECTED: RaceOnce<Detected> = RaceOnce::new();
    DETECTED.get_or_init(|| {
        let features = detect_features();
        let mut d = Detected { features, intel: detect_intel(), best: Isa::Scalar, initial: Ok(Isa::Scalar) };
        // `isa_supported` reads `detected()`, which is still initializing.
        let probe = |isa: Isa| supported_by(features, isa);
        d.best = Isa::ALL.into_iter().filter(|&i| probe(i)).max().unwrap_or(Isa::Scalar);
        // An empty value counts as unset, as with most tools, so a script
        // that sets `MLAK_ISA=` does not make every call fail.
        d.initial = match std::env::var("MLAK_ISA") {
            Err(_) => Ok(d.best),
            Ok(name) if name.trim().is_empty() => Ok(d.best),
            Ok(name) => match Isa::from_name(name.trim()) {
                None => Err(format!(
                    "MLAK_ISA = {name:?} is not a known instruction set; use one of scalar, avx2, avx512, neon"
                )),
                Some(isa) if !probe(isa) => Err(format!(
                    "MLAK_ISA = {name:?} is not supported by this CPU; the best supported level is {}",
                    d.best.name()
                )),
                Some(isa) => Ok(isa),
            },
        };
        if std::env::var_os("MLAK_LOG").is_some_and(|v| v == "1") {
            log_choice(&d);
        }
        d
    })
}

/// Returns whether feature bits `f` cover the level `isa`.
fn supported_by(f: u64, isa: Isa) -> bool {
    let all = |bits: u64| f & bits == bits;
    match isa {
        Isa::Scalar => true,
        Isa::Avx2 => cfg!(target_arch = "x86_64") && all(feature::AVX2 | feature::FMA | feature::F16C),
        Isa::Avx512 => {
            supported_by(f, Isa::Avx2)
                && all(feature::AVX512F | feature::AVX512BW | feature::AVX512DQ | feature::AVX512VL)
        }
        Isa::Neon => cfg!(target_arch = "aarch64") && all(feature::NEON),
    }
}

/// Writes the one stderr line that `MLAK_LOG=1` asks for.
fn log_choice(d: &Detected) {
    let names: Vec<&str> =
        feature::NAMES.iter().filter(|(bit, _)| d.features & bit != 0).map(|(_, n)| *n).collect();
    let choice = match &d.initial {
        Ok(isa) => format!("isa={}", isa.name()),
        Err(e) => format!("isa=none ({e})"),
    };
    eprintln!("mlak: {choice} best={} features=[{}]", d.best.name(), names.join(","));
}

/// The active kernel table; null until the first successful selection.
static ACTIVE: AtomicPtr<Kernels> = AtomicPtr::new(std::ptr::null_mut());

thread_local! {
    /// Table forced on this thread by [`with_isa`]; null when none.
    static THREAD_TABLE: Cell<*const Kernels> = const { Cell::new(std::ptr::null()) };
    /// Level of the table most recently handed to a kernel call on this thread.
    static LAST_DISPATCHED: Cell<Option<Isa>> = const { Cell::new(None) };
}

/// Returns the kernel table for this thread: the one forced by
/// [`with_isa`], else the process-wide one, selected on first use.
#[inline]
fn current_table() -> Result<&'static Kernels> {
    let forced = THREAD_TABLE.with(Cell::get);
    if !forced.is_null() {
        // SAFETY: THREAD_TABLE only holds pointers to `'static` tables.
        return Ok(unsafe { &*forced });
    }
    let p = ACTIVE.load(Ordering::Acquire);
    if p.is_null() {
        return select_initial();
    }
    // SAFETY: ACTIVE only holds pointers to `'static` tables.
    Ok(unsafe { &*p })
}

/// Returns the kernel table for a kernel call and records its level for
/// [`last_dispatched_isa`].
#[inline]
pub(crate) fn kernels() -> Result<&'static Kernels> {
    let table = current_table()?;
    LAST_DISPATCHED.with(|c| c.set(Some(table.isa)));
    Ok(table)
}

/// Returns the level of the kernels that the most recent kernel call on this
/// thread dispatched to, or `None` before the first one. Tests use it to
/// prove that a forced level really ran.
pub fn last_dispatched_isa() -> Option<Isa> {
    LAST_DISPATCHED.with(Cell::get)
}

/// Runs `f` with dispatch on this thread forced to `isa`, then restores the
/// previous choice. Worker threads started by calls inside `f` use the same
/// kernels. Fails without running `f` when the CPU lacks `isa`.
pub fn with_isa<R>(isa: Isa, f: impl FnOnce() -> R) -> Result<R> {
    check_supported(isa)?;
    struct Restore(*const Kernels);
    impl Drop for Restore {
        fn drop(&mut self) {
            THREAD_TABLE.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(THREAD_TABLE.with(|c| c.replace(table_for(isa))));
    Ok(f())
}

fn check_supported(isa: Isa) -> Result<()> {
    if isa_supported(isa) {
        return Ok(());
    }
    Err(Error::new(
        Status::UnsupportedIsa,
        format!("isa = {} is not supported by this CPU; the best supported level is {}", isa.name(), best_isa().name()),
    ))
}

#[cold]
fn select_initial() -> Result<&'static Kernels> {
    let isa = detected().initial.clone().map_err(|m| Error::new(Status::UnsupportedIsa, m))?;
    let table = table_for(isa);
    // A concurrent `set_isa` wins over the environment.
    let _ = ACTIVE.compare_exchange(
        std::ptr::null_mut(),
        table as *const Kernels as *mut Kernels,
        Ordering::AcqRel,
        Ordering::Acquire,
    );
    // SAFETY: as in `kernels`.
    Ok(unsafe { &*ACTIVE.load(Ordering::Acquire) })
}

/// Returns the level that a call on this thread would dispatch to now.
pub fn active_isa() -> Result<Isa> {
    current_table().map(|k| k.isa)
}

/// Caps dispatch at `isa` for the whole process, overriding `MLAK_ISA`.
pub fn set_isa(isa: Isa) -> Result<()> {
    check_supported(isa)?;
    ACTIVE.store(table_for(isa) as *const Kernels as *mut Kernels, Ordering::Release);
    Ok(())
}
