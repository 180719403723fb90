//! `MLAK_ISA`, `MLAK_LOG` and `MLAK_NUM_THREADS` are read once per process,
//! so each case runs this test binary again as a child with the variable
//! set, and the child reports what it saw on stdout.

mod common;

use mlak::{Isa, Status};
use std::process::Command;

const CHILD: &str = "MLAK_DISPATCH_TEST_CHILD";

/// Runs `child_reports_dispatch` in a child process with `env` set, and
/// returns its stdout and stderr, or None when the platform cannot start a
/// child (an emulator without binfmt support).
fn run_child(env: &[(&str, &str)]) -> Option<(String, String)> {
    let exe = std::env::current_exe().expect("test binary path");
    // Under emulation the child needs the same runner as this process, which
    // cargo names in CARGO_TARGET_<TRIPLE>_RUNNER (see scripts/test-neon.sh).
    let runner = if cfg!(target_arch = "aarch64") {
        std::env::var("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER").ok()
    } else {
        None
    };
    let mut cmd = match runner.as_deref().map(str::split_whitespace) {
        Some(mut words) if words.clone().next().is_some() => {
            let mut c = Command::new(words.next().unwrap_or_default());
            c.args(words).arg(exe);
            c
        }
        _ => Command::new(exe),
    };
    cmd.args(["--exact", "child_reports_dispatch", "--nocapture", "--test-threads=1", "-q"]);
    cmd.env(CHILD, "1").env_remove("MLAK_ISA").env_remove("MLAK_LOG").env_remove("MLAK_NUM_THREADS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    match cmd.output() {
        Ok(out) => Some((String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())),
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "SKIPPED: cannot start a child process here: {e}");
            None
        }
    }
}

/// The child side: reports the active level, the level a kernel call ran
/// and the thread count, or the errors.
#[test]
fn child_reports_dispatch() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    match mlak::active_isa() {
        Ok(isa) => {
            let x = [1.0f32, 2.0, 3.0];
            let mut y = [0.0f32; 3];
            if let Err(e) = mlak::softmax(&x, 3, &mut y, 3, 1, 3, 1.0) {
                println!("CHILD softmax_error={:?} message={}", e.status(), e.message());
            }
            let ran = mlak::last_dispatched_isa().map_or("none", Isa::name);
            println!("CHILD active={} ran={ran}", isa.name());
        }
        Err(e) => println!("CHILD error={:?} message={}", e.status(), e.message()),
    }
    match mlak::num_threads() {
        Ok(n) => println!("CHILD threads={n}"),
        Err(e) => println!("CHILD threads_error={:?} message={}", e.status(), e.message()),
    }
}

#[test]
fn mlak_isa_caps_dispatch() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    for isa in Isa::ALL {
        let Some((out, _)) = run_child(&[("MLAK_ISA", isa.name())]) else { return };
        if mlak::isa_supported(isa) {
            let want = format!("CHILD active={0} ran={0}", isa.name());
            assert!(out.contains(&want), "MLAK_ISA={}: child printed {out:?}", isa.name());
        } else {
            assert!(out.contains("error=UnsupportedIsa"), "MLAK_ISA={}: child printed {out:?}", isa.name());
            assert!(out.contains("not supported by this CPU"), "MLAK_ISA={}: child printed {out:?}", isa.name());
        }
    }
}

#[test]
fn mlak_isa_unknown_name_fails_calls() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let Some((out, err)) = run_child(&[("MLAK_ISA", "sse9")]) else { return };
    assert!(out.contains("error=UnsupportedIsa"), "child printed {out:?}");
    assert!(out.contains("\"sse9\" is not a known instruction set"), "child printed {out:?}");
    assert!(!err.contains("mlak"), "the library printed without MLAK_LOG: {err:?}");
}

#[test]
fn mlak_isa_empty_means_unset() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    for value in ["", "  "] {
        let Some((out, _)) = run_child(&[("MLAK_ISA", value)]) else { return };
        let want = format!("CHILD active={0} ran={0}", mlak::best_isa().name());
        assert!(out.contains(&want), "MLAK_ISA={value:?}: child printed {out:?}");
    }
}

#[test]
fn mlak_log_prints_one_line() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let Some((_, err)) = run_child(&[("MLAK_LOG", "1")]) else { return };
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("mlak:")).collect();
    assert_eq!(lines.len(), 1, "MLAK_LOG=1 must print one line, got {err:?}");
    assert!(lines[0].contains(&format!("isa={}", mlak::best_isa().name())), "log line {:?}", lines[0]);
    let Some((_, quiet)) = run_child(&[]) else { return };
    assert!(!quiet.contains("mlak:"), "logging must be off by default, got {quiet:?}");
}

#[test]
fn mlak_num_threads_env() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let Some((out, _)) = run_child(&[("MLAK_NUM_THREADS", "3")]) else { return };
    assert!(out.contains("CHILD threads=3"), "child printed {out:?}");
    let Some((out, _)) = run_child(&[("MLAK_NUM_THREADS", "zero")]) else { return };
    assert!(out.contains("threads_error=InvalidArgument"), "child printed {out:?}");
    assert!(out.contains("MLAK_NUM_THREADS = \"zero\""), "child printed {out:?}");
}

#[test]
fn with_isa_rejects_unsupported_levels() {
    for isa in Isa::ALL {
        let r = mlak::with_isa(isa, || mlak::active_isa().unwrap());
        if mlak::isa_supported(isa) {
            assert_eq!(r.unwrap(), isa, "with_isa({}) did not apply", isa.name());
        } else {
            let e = r.unwrap_err();
            assert_eq!(e.status(), Status::UnsupportedIsa);
            assert!(e.message().contains(isa.name()), "{}", e.message());
        }
    }
    assert!(mlak::isa_supported(Isa::Scalar), "scalar must always be supported");
}

#[test]
fn best_isa_matches_features() {
    let f = mlak::cpu_features();
    let best = mlak::best_isa();
    if cfg!(target_arch = "x86_64") {
        let avx512 = mlak::feature::AVX512F | mlak::feature::AVX512BW | mlak::feature::AVX512DQ | mlak::feature::AVX512VL;
        assert_eq!(best == Isa::Avx512, f & avx512 == avx512 && f & mlak::feature::AVX2 != 0, "features {f:#x}");
    }
    if cfg!(target_arch = "aarch64") {
        assert_eq!(best, Isa::Neon, "every aarch64 Linux CPU has NEON; features {f:#x}");
    }
}
