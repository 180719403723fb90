//! Thread count setting and the scoped fork-join used by the drivers.
//!
//! Work is split into contiguous chunks run on `std::thread::scope` threads,
//! with the calling thread taking the first chunk. A call made from inside a
//! mlak worker, or from a caller that has set one thread, runs inline, so
//! callers that run many threads of their own are not oversubscribed when
//! they set `mlak_set_num_threads(1)`.

use crate::error::{Error, Result};
use std::cell::Cell;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Thread count set by `set_num_threads`; 0 means the default.
static REQUESTED: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static IN_WORKER: Cell<bool> = const { Cell::new(false) };
}

/// The default thread count: `MLAK_NUM_THREADS` if set, else the number of
/// cores available to the process. Read once.
fn default_threads() -> Result<usize> {
    static DEFAULT: OnceLock<std::result::Result<usize, String>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| match std::env::var("MLAK_NUM_THREADS") {
            Ok(v) => match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("MLAK_NUM_THREADS = {v:?} is invalid; it must be a positive integer")),
            },
            Err(_) => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
        })
        .clone()
        .map_err(Error::invalid)
}

/// Returns the thread count used for large calls.
pub fn num_threads() -> Result<usize> {
    match REQUESTED.load(Ordering::Relaxed) {
        0 => default_threads(),
        n => Ok(n),
    }
}

/// Sets the thread count for large calls; 0 restores the default
/// (`MLAK_NUM_THREADS`, else the core count).
pub fn set_num_threads(n: usize) {
    REQUESTED.store(n, Ordering::Relaxed);
}

/// Runs `f` over `0 .. tasks`, split into at most `threads` contiguous
/// chunks of at least `min_chunk` tasks, in parallel. Runs inline when one
/// chunk suffices or when called from a mlak worker thread.
pub(crate) fn parallel_for<F>(tasks: usize, min_chunk: usize, threads: usize, f: F)
where
    F: Fn(Range<usize>) + Sync,
{
    let max_chunks = tasks.div_ceil(min_chunk.max(1));
    let chunks = threads.min(max_chunks).max(1);
    if chunks == 1 || IN_WORKER.with(Cell::get) {
        f(0..tasks);
        return;
    }
    let per = tasks.div_ceil(chunks);
    let f = &f;
    std::thread::scope(|scope| {
        let mut inline = Vec::new();
        for c in 1..chunks {
            let range = (c * per).min(tasks)..((c + 1) * per).min(tasks);
            let spawned = std::thread::Builder::new().spawn_scoped(scope, move || {
                IN_WORKER.with(|w| w.set(true));
                f(range.clone());
            });
            // A failed spawn (thread limit reached) degrades to inline work.
            if spawned.is_err() {
                inline.push(c);
            }
        }
        f(0..per.min(tasks));
        for c in inline {
            f((c * per).min(tasks)..((c + 1) * per).min(tasks));
        }
    });
}

/// A raw pointer that may be shared with worker threads. The drivers give
/// each worker a disjoint range of rows, which is what makes this sound.
#[derive(Clone, Copy)]
pub(crate) struct SharedPtr<T>(pub *mut T);

impl<T> SharedPtr<T> {
    /// Returns the pointer. Closures must call this instead of reading the
    /// field, so that they capture the `Sync` wrapper and not the raw pointer.
    #[inline(always)]
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

// SAFETY: the pointer is only dereferenced by drivers that hand disjoint
// output ranges to each thread and only read the shared inputs.
unsafe impl<T> Send for SharedPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SharedPtr<T> {}

/// Returns whether the current thread is a mlak worker.
pub(crate) fn in_worker() -> bool {
    IN_WORKER.with(Cell::get)
}
