//! The C ABI. Every export catches panics, validates its arguments before
//! writing anything, and reports failures as a [`Status`] plus a
//! thread-local message read with `mlak_last_error`.
//!
//! The exports are safe `extern "C"` functions that take raw pointers: a C
//! caller cannot be made to write `unsafe`, so each export checks NULL,
//! alignment and extents before dereferencing, and documents the rest of
//! its pointer contract in the header.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

mod attention;
mod core;
mod entmax;
mod gemm;
mod glue;
mod moe;
mod softmax;

pub use self::attention::*;
pub use self::core::*;
pub use self::entmax::*;
pub use self::gemm::*;
pub use self::glue::*;
pub use self::moe::*;
pub use self::softmax::*;

use crate::error::{set_last_error, Result, Status};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    static IN_EXPORT: Cell<bool> = const { Cell::new(false) };
}

/// Installs, once, a panic hook that stays silent for panics raised inside
/// a C export or a mlak worker thread (they become `MLAK_STATUS_INTERNAL`)
/// and defers to the previous hook for every other panic.
///
/// A call that finds another thread installing it goes on without
/// waiting. A waiting call, as with `Once`, would hang forever in a child
/// made by `fork` while a parent thread was installing the hook.
fn install_quiet_hook() {
    static STARTED: AtomicBool = AtomicBool::new(false);
    // The load keeps later calls from writing the shared flag.
    if STARTED.load(Ordering::Relaxed) || STARTED.swap(true, Ordering::AcqRel) {
        return;
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !IN_EXPORT.with(Cell::get) && !crate::threads::in_worker() {
            previous(info);
        }
    }));
}

/// Runs the body of a C export: catches panics, records the error message
/// and maps the result to a status.
pub(crate) fn guard(body: impl FnOnce() -> Result<()>) -> Status {
    install_quiet_hook();
    let was_inside = IN_EXPORT.with(|c| c.replace(true));
    let outcome = catch_unwind(AssertUnwindSafe(body));
    IN_EXPORT.with(|c| c.set(was_inside));
    match outcome {
        Ok(Ok(())) => Status::Ok,
        Ok(Err(e)) => {
            set_last_error(e.message());
            e.status()
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            set_last_error(&format!("internal error: a panic was caught at the C boundary: {what}"));
            Status::Internal
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use std::ffi::CStr;

    fn last_error() -> String {
        // SAFETY: the pointer is valid until the next mlak call on this thread.
        unsafe { CStr::from_ptr(crate::error::last_error_ptr()) }.to_string_lossy().into_owned()
    }

    #[test]
    fn guard_turns_panic_into_internal_status() {
        let status = guard(|| panic!("index 7 out of range"));
        assert_eq!(status, Status::Internal);
        assert!(last_error().contains("index 7 out of range"), "message: {}", last_error());
        // The thread stays usable and the next export reports normally.
        assert_eq!(guard(|| Ok(())), Status::Ok);
    }

    #[test]
    fn guard_reports_error_message() {
        let status = guard(|| Err(Error::invalid("n = -1 is negative; dimensions must be >= 0")));
        assert_eq!(status, Status::InvalidArgument);
        assert_eq!(last_error(), "n = -1 is negative; dimensions must be >= 0");
    }
}
