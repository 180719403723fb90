//! Status codes, the error type and the thread-local last-error message.

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::fmt;

/// Result status of every fallible call; 0 is success.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// The call succeeded.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullPointer = 1,
    /// An argument broke a documented rule: a negative dimension, a stride
    /// below the row width, an overflowing size, a bad value.
    InvalidArgument = 2,
    /// The instruction set requested by `MLAK_ISA` or `mlak_set_isa` is
    /// unknown or not supported by this CPU.
    UnsupportedIsa = 3,
    /// A workspace allocation failed.
    AllocationFailed = 4,
    /// A bug inside mlak, such as a caught panic. Please report it.
    Internal = 5,
}

impl Status {
    /// Returns a static description of the status.
    pub fn description(self) -> &'static str {
        match self {
            Status::Ok => "success",
            Status::NullPointer => "null pointer argument",
            Status::InvalidArgument => "invalid argument",
            Status::UnsupportedIsa => "unsupported instruction set",
            Status::AllocationFailed => "allocation failed",
            Status::Internal => "internal error",
        }
    }

    /// Returns the status with the given numeric code, if there is one.
    pub fn from_code(code: i32) -> Option<Status> {
        Some(match code {
            0 => Status::Ok,
            1 => Status::NullPointer,
            2 => Status::InvalidArgument,
            3 => Status::UnsupportedIsa,
            4 => Status::AllocationFailed,
            5 => Status::Internal,
            _ => return None,
        })
    }
}

/// An error from a mlak call: a status and a message that names the
/// argument, its value and the rule it broke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    status: Status,
    message: String,
}

impl Error {
    pub(crate) fn new(status: Status, message: impl Into<String>) -> Self {
        debug_assert_ne!(status, Status::Ok);
        Error { status, message: message.into() }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::new(Status::InvalidArgument, message)
    }

    /// The status code of the error.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The message, naming the argument, its value and the rule broken.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status.description(), self.message)
    }
}

impl std::error::Error for Error {}

/// Result of the safe Rust API.
pub type Result<T> = std::result::Result<T, Error>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Stores `message` as this thread's last error message.
pub(crate) fn set_last_error(message: &str) {
    // Interior NULs cannot come from mlak's own messages, but a caller's
    // string (an ISA name) could carry one; it is replaced, not dropped.
    let c = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = c);
}

/// Returns a pointer to this thread's last error message, valid until the
/// next mlak call on this thread.
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|slot| slot.borrow().as_ptr())
}
