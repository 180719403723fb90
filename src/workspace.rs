//! Scratch buffers kept between calls.
//!
//! The GEMM packing buffers and the attention scratch are up to megabytes
//! per thread. A fresh allocation of that size comes from `mmap`, so each
//! call would fault in and zero every page again. Allocated per call, a
//! 2-thread 512³ f32 GEMM spent about 40 % of its time in the kernel (Zen 5).
//! Dropped workspaces return here instead, up to [`MAX_SPARE_FLOATS`] in
//! all, and later calls take them again.

use crate::error::{Error, Result, Status};
use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard, TryLockError};

/// Floats kept for reuse in all: 64 MiB.
const MAX_SPARE_FLOATS: usize = 16 << 20;

static SPARE: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// Returns the spare list, or `None` while another thread uses it.
///
/// This never waits. A child made by `fork` while a thread of the parent
/// held the lock inherits it locked forever, and waiting would hang the
/// child's first GEMM. Without the list, a call allocates and frees its
/// workspaces itself.
fn spare() -> Option<MutexGuard<'static, Vec<Vec<f32>>>> {
    match SPARE.try_lock() {
        Ok(list) => Some(list),
        // The list stays consistent whatever panicked while holding the lock.
        Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// A buffer of f32 that returns to the spare list when dropped.
pub(crate) struct Workspace(Vec<f32>);

impl Deref for Workspace {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl DerefMut for Workspace {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        if v.capacity() == 0 {
            return;
        }
        let Some(mut list) = spare() else {
            return;
        };
        let spare_floats: usize = list.iter().map(Vec::capacity).sum();
        if spare_floats + v.capacity() <= MAX_SPARE_FLOATS {
            list.push(v);
        }
    }
}

/// Returns a workspace of `len` floats. `label` names it in the error when
/// memory runs out.
///
/// Its contents are unspecified: callers write each element before they
/// read it. Builds with debug assertions fill it with NaN, so a read
/// before a write shows up in the tests as NaN output.
pub(crate) fn take(len: usize, label: &str) -> Result<Workspace> {
    let reused = spare().and_then(|mut list| {
        // The smallest spare with room for len floats.
        let best = (0..list.len()).filter(|&i| list[i].capacity() >= len).min_by_key(|&i| list[i].capacity());
        best.map(|i| list.swap_remove(i))
    });
    let mut v = match reused {
        Some(v) => v,
        None => {
            let mut v = Vec::new();
            v.try_reserve_exact(len).map_err(|_| {
                Error::new(Status::AllocationFailed, format!("{label} of {len} floats does not fit in memory"))
            })?;
            v
        }
    };
    if cfg!(debug_assertions) {
        v.clear();
        v.resize(len, f32::NAN);
    } else if v.len() >= len {
        v.truncate(len);
    } else {
        v.resize(len, 0.0);
    }
    Ok(Workspace(v))
}

/// Workspaces for the ranges of one `parallel_for` call, all taken before
/// the call starts, so that running out of memory fails the call before it
/// writes any output.
pub(crate) struct PerRange(Mutex<Vec<Workspace>>);

impl PerRange {
    /// Takes `ranges` workspaces of `len` floats: one for each range that
    /// `parallel_for` may run at once.
    pub(crate) fn new(ranges: usize, len: usize, label: &str) -> Result<PerRange> {
        let mut list = Vec::with_capacity(ranges);
        for _ in 0..ranges {
            list.push(take(len, label)?);
        }
        Ok(PerRange(Mutex::new(list)))
    }

    /// Returns one of the free workspaces.
    ///
    /// # Panics
    ///
    /// When more ranges run at once than [`PerRange::new`] counted.
    pub(crate) fn get(&self) -> Workspace {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .expect("parallel_for runs no more ranges at once than were counted")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuse_keeps_length_and_capacity_rules() {
        for len in [0, 1, 17, 4096, 100_000, 3] {
            let w = take(len, "a test workspace").unwrap();
            assert_eq!(w.len(), len, "requested {len}");
            if cfg!(debug_assertions) {
                assert!(w.iter().all(|x| x.is_nan()), "debug workspaces start as NaN (len {len})");
            }
        }
        let list = SPARE.lock().unwrap();
        let spare_floats: usize = list.iter().map(Vec::capacity).sum();
        assert!(spare_floats <= MAX_SPARE_FLOATS, "spare list keeps {spare_floats} floats");
    }

    #[test]
    fn held_spare_lock_never_blocks() {
        // Models a fork child whose spare list was locked by a parent
        // thread: taking and dropping must go on without the list.
        let list = SPARE.lock().unwrap();
        let w = take(1000, "a test workspace").unwrap();
        assert_eq!(w.len(), 1000);
        drop(w);
        drop(list);
    }

    #[test]
    fn huge_request_reports_allocation_failure() {
        let err = take(usize::MAX / 8, "a test workspace").err().expect("must fail");
        assert_eq!(err.status(), Status::AllocationFailed);
        assert!(err.message().contains("a test workspace of"), "message: {}", err.message());
    }
}
