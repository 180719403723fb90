//! A lazily computed value whose readers never wait.
//!
//! `std::sync::OnceLock` makes every caller wait while one thread runs the
//! initializer. A child made by `fork` while a parent thread was inside an
//! initializer inherits that state with no thread to finish it, so its
//! first call to the library would hang forever. Here each caller that
//! finds no value computes one and tries to publish it, and the first
//! published value wins. The initializers must therefore be idempotent and
//! cheap enough to run twice: CPU feature detection, cache sizes from
//! sysfs, environment variables.

use std::sync::atomic::{AtomicPtr, Ordering};

/// A value set once by whichever caller publishes first, then leaked for
/// the rest of the process.
pub(crate) struct RaceOnce<T> {
    value: AtomicPtr<T>,
}

// SAFETY: threads share the published value only through `&T`, which
// needs `T: Sync`. A value made on one thread may be dropped by another
// (a losing racer's value), which needs `T: Send`.
unsafe impl<T: Send + Sync> Sync for RaceOnce<T> {}

impl<T> RaceOnce<T> {
    pub(crate) const fn new() -> Self {
        RaceOnce { value: AtomicPtr::new(std::ptr::null_mut()) }
    }

    /// Returns the published value, publishing `init()` first if there is
    /// none. Concurrent first callers may each run `init`; all of them get
    /// the one value that was published.
    pub(crate) fn get_or_init(&self, init: impl FnOnce() -> T) -> &T {
        let current = self.value.load(Ordering::Acquire);
        if !current.is_null() {
            // SAFETY: a non-null pointer came from `Box::into_raw` below and
            // is never freed, so it is valid for the life of `self`.
            return unsafe { &*current };
        }
        let mine = Box::into_raw(Box::new(init()));
        let null = std::ptr::null_mut();
        match self.value.compare_exchange(null, mine, Ordering::AcqRel, Ordering::Acquire) {
            // SAFETY: `mine` is now the published, never freed value.
            Ok(_) => unsafe { &*mine },
            Err(theirs) => {
                // SAFETY: `mine` was never published, so this is its only
                // owner; `theirs` is published and never freed.
                unsafe {
                    drop(Box::from_raw(mine));
                    &*theirs
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn racing_callers_share_one_value() {
        static CELL: RaceOnce<usize> = RaceOnce::new();
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let seen: Vec<usize> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    s.spawn(move || {
                        *CELL.get_or_init(|| {
                            RUNS.fetch_add(1, Ordering::Relaxed);
                            100 + i
                        })
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let first = seen[0];
        assert!(seen.iter().all(|&v| v == first), "callers saw different values: {seen:?}");
        assert_eq!(*CELL.get_or_init(|| 0), first, "a later caller must get the published value");
        assert!(RUNS.load(Ordering::Relaxed) >= 1);
    }
}
