//! Thread count setting and the scoped fork-join used by the drivers.
//!
//! Work is split into contiguous chunks run on persistent worker threads,
//! with the calling thread taking the first chunk. A call made from inside a
//! mlak worker, or from a caller that has set one thread, runs inline, so
//! callers that run many threads of their own are not oversubscribed when
//! they set `mlak_set_num_threads(1)`.

use crate::error::{Error, Result};
use std::cell::Cell;
use std::ops::Range;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use crate::once::RaceOnce;

/// Thread count set by `set_num_threads`; 0 means the default.
static REQUESTED: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static IN_WORKER: Cell<bool> = const { Cell::new(false) };
}

/// The default thread count: `MLAK_NUM_THREADS` if set, else the number of
/// cores available to the process. Read once.
fn default_threads() -> Result<usize> {
    static DEFAULT: RaceOnce<std::result::Result<usize, String>> = RaceOnce::new();
    DEFAULT
        .get_or_init(|| match std::env::var("MLAK_NUM_THREADS") {
            Ok(v) => match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("MLAK_NUM_THREADS = {v:?} is invalid; it must be a positive integer")),
            },
            Err(_) => Ok(cores()),
        })
        .clone()
        .map_err(Error::invalid)
}

/// Returns the number of cores available to the process, read once.
fn cores() -> usize {
    static CORES: RaceOnce<usize> = RaceOnce::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
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

/// Elements per thread below which the row-wise drivers (softmax, the
/// sparse normalizers, norms, activations, RoPE) stay on fewer threads.
/// Handing a chunk to a pool worker costs about 2 µs. On one Zen 5 core,
/// softmax on 2 threads broke even at about 32K elements in all, with rows
/// of 64 and of 1024, and took 0.77x the 1-thread time at 64K.
pub(crate) const MIN_ELEMS_PER_THREAD: usize = 1 << 14;

/// Runs `f` over `0 .. tasks`, split into at most `threads` contiguous
/// chunks of at least `min_chunk` tasks, in parallel. Runs inline when one
/// chunk suffices or when called from a mlak worker thread.
///
/// The calling thread takes the first chunk. The others go to the
/// persistent workers of [`pool`], or, while another call uses the pool,
/// to scoped threads spawned for this call. A panic in any chunk is raised
/// again on the calling thread once every chunk has finished.
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
    let chunk = |c: usize| (c * per).min(tasks)..((c + 1) * per).min(tasks);
    if let Some(mut workers) = pool::claim() {
        workers.run(chunks, &chunk, &f);
        return;
    }
    // Each chunk's panic is caught and the first one raised again here, so
    // the caller sees the payload itself, as with the pool.
    let run = |c: usize| catch_unwind(AssertUnwindSafe(|| f(chunk(c)))).err();
    let run = &run;
    let panic = std::thread::scope(|scope| {
        let mut spawned = Vec::new();
        let mut inline = Vec::new();
        for c in 1..chunks {
            let handle = std::thread::Builder::new().spawn_scoped(scope, move || {
                IN_WORKER.with(|w| w.set(true));
                run(c)
            });
            // A failed spawn (thread limit reached) degrades to inline work.
            match handle {
                Ok(h) => spawned.push(h),
                Err(_) => inline.push(c),
            }
        }
        let mut panic = run(0);
        for c in inline {
            panic = panic.or_else(|| run(c));
        }
        for h in spawned {
            // The chunk's own panic is caught inside the thread.
            panic = panic.or(h.join().unwrap_or_else(Some));
        }
        panic
    });
    if let Some(p) = panic {
        resume_unwind(p);
    }
}

/// The persistent workers behind [`parallel_for`].
///
/// Spawning and joining a scoped thread costs 20 to 40 µs on the 2-core
/// machines this was measured on. A 2-thread attention decode over 1k keys
/// of 8 KV heads took 131 µs with scoped threads, as long as on one thread,
/// and 72 µs with these workers (Zen 5). Workers live for the rest of the
/// process instead.
/// After a chunk a worker polls for the next one for [`SPIN`], because the
/// calls of one model step follow each other within microseconds, and then
/// sleeps on a condition variable until the next post. With more threads
/// than cores it sleeps at once: 8 threads on 2 cores took 870 µs per
/// decode call while polling (Hkv 8, 256 keys) and 76 µs while sleeping.
///
/// One call at a time owns the pool; a concurrent call from another thread
/// falls back to scoped threads. A child process created by `fork` starts
/// with no workers, so the pool notes its process id and starts afresh in a
/// child.
mod pool {
    use super::IN_WORKER;
    use std::any::Any;
    use std::ops::Range;
    use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
    use std::time::{Duration, Instant};

    /// How long an idle worker, or a caller waiting for its workers, polls
    /// before it sleeps.
    const SPIN: Duration = Duration::from_micros(200);

    /// Set while the pool has more threads, with the caller, than the
    /// process has cores. Polling threads would then take the cores that
    /// the working ones need, so everyone sleeps at once instead.
    static OVERSUBSCRIBED: AtomicBool = AtomicBool::new(false);

    /// Returns how long to poll before sleeping.
    fn spin() -> Duration {
        if OVERSUBSCRIBED.load(Ordering::Relaxed) {
            Duration::ZERO
        } else {
            SPIN
        }
    }

    /// A chunk of a call: the caller's closure with its type erased.
    struct Job {
        /// Points at the caller's `F`, alive until the chunk is marked done.
        data: *const (),
        call: unsafe fn(*const (), Range<usize>),
        range: Range<usize>,
    }

    // SAFETY: `data` points at an `F: Sync` that the caller keeps alive until
    // the worker reports the chunk done, so running it on another thread is
    // sound.
    unsafe impl Send for Job {}

    /// Calls the `F` behind `data` on `range`.
    ///
    /// # Safety
    ///
    /// `data` points at a live `F`.
    unsafe fn call<F: Fn(Range<usize>) + Sync>(data: *const (), range: Range<usize>) {
        // SAFETY: the caller guarantees that `data` is a live `F`.
        let f = unsafe { &*(data as *const F) };
        f(range);
    }

    #[derive(Default)]
    struct State {
        job: Option<Job>,
        /// The panic payload of the last job, if it panicked.
        panic: Option<Box<dyn Any + Send>>,
        /// The worker sleeps on `wake`.
        asleep: bool,
        /// The caller sleeps on `finished`.
        waiting: bool,
    }

    /// One worker's mailbox.
    #[derive(Default)]
    struct Slot {
        state: Mutex<State>,
        /// Set with a posted job, cleared by the worker as it takes it:
        /// lets both sides poll without the lock.
        posted: AtomicBool,
        /// Set by the worker, under the lock, when the job is done.
        done: AtomicBool,
        wake: Condvar,
        finished: Condvar,
    }

    fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
        // A job's panic is caught before it can poison the lock.
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    impl Slot {
        fn work(&self) {
            IN_WORKER.with(|w| w.set(true));
            loop {
                let start = Instant::now();
                while !self.posted.load(Ordering::Acquire) && start.elapsed() < spin() {
                    for _ in 0..64 {
                        std::hint::spin_loop();
                    }
                }
                let job = {
                    let mut st = lock(&self.state);
                    while st.job.is_none() {
                        st.asleep = true;
                        st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
                        st.asleep = false;
                    }
                    self.posted.store(false, Ordering::Relaxed);
                    st.job.take().expect("a job is posted")
                };
                // SAFETY: the poster keeps `data` alive until `done` is set.
                let result = catch_unwind(AssertUnwindSafe(|| unsafe { (job.call)(job.data, job.range) }));
                let mut st = lock(&self.state);
                st.panic = result.err();
                self.done.store(true, Ordering::Release);
                if st.waiting {
                    self.finished.notify_one();
                }
            }
        }

        fn post(&self, job: Job) {
            let mut st = lock(&self.state);
            st.job = Some(job);
            self.done.store(false, Ordering::Relaxed);
            self.posted.store(true, Ordering::Release);
            if st.asleep {
                self.wake.notify_one();
            }
        }

        /// Waits until the posted job is done and returns its panic, if any.
        fn join(&self) -> Option<Box<dyn Any + Send>> {
            let start = Instant::now();
            while !self.done.load(Ordering::Acquire) && start.elapsed() < spin() {
                for _ in 0..64 {
                    std::hint::spin_loop();
                }
            }
            let mut st = lock(&self.state);
            // The worker sets `done` under the lock, so checking it here
            // cannot miss the notification.
            while !self.done.load(Ordering::Acquire) {
                st.waiting = true;
                st = self.finished.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            st.waiting = false;
            st.panic.take()
        }
    }

    struct Pool {
        /// The process that spawned `slots`.
        pid: u32,
        slots: Vec<Arc<Slot>>,
    }

    static POOL: Mutex<Pool> = Mutex::new(Pool { pid: 0, slots: Vec::new() });

    /// The pool, held by one call.
    pub(super) struct Workers(MutexGuard<'static, Pool>);

    /// Returns the pool, or `None` while another call uses it.
    pub(super) fn claim() -> Option<Workers> {
        let mut pool = match POOL.try_lock() {
            Ok(p) => p,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        let pid = std::process::id();
        if pool.pid != pid {
            // Workers of a parent process do not exist in a forked child.
            pool.pid = pid;
            pool.slots.clear();
        }
        Some(Workers(pool))
    }

    impl Workers {
        /// Runs `f(chunk(c))` for every c in `0 .. chunks`: chunk 0 on this
        /// thread, the others on workers, spawned as needed. Chunks whose
        /// worker cannot be spawned run here. Raises the first panic after
        /// every chunk has finished.
        ///
        /// The workers get `f` by address. That is sound because this
        /// function joins every posted chunk before it returns or unwinds,
        /// including when a chunk on this thread panics.
        pub(super) fn run<F, C>(&mut self, chunks: usize, chunk: &C, f: &F)
        where
            F: Fn(Range<usize>) + Sync,
            C: Fn(usize) -> Range<usize>,
        {
            let slots = &mut self.0.slots;
            while slots.len() < chunks - 1 {
                let slot = Arc::new(Slot::default());
                let worker = Arc::clone(&slot);
                let spawned = std::thread::Builder::new()
                    .name("mlak-worker".into())
                    .spawn(move || worker.work());
                if spawned.is_err() {
                    break;
                }
                slots.push(slot);
            }
            OVERSUBSCRIBED.store(slots.len() + 1 > super::cores(), Ordering::Relaxed);
            let posted = slots.len().min(chunks - 1);
            for (i, slot) in slots[..posted].iter().enumerate() {
                let data = f as *const F as *const ();
                slot.post(Job { data, call: call::<F>, range: chunk(i + 1) });
            }
            let mut panic = catch_unwind(AssertUnwindSafe(|| {
                f(chunk(0));
                for c in posted + 1..chunks {
                    f(chunk(c));
                }
            }))
            .err();
            for slot in &slots[..posted] {
                let p = slot.join();
                panic = panic.or(p);
            }
            if let Some(p) = panic {
                resume_unwind(p);
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::atomic::AtomicBool;
    use std::sync::Mutex;
    use std::thread::ThreadId;

    /// Runs `parallel_for` and returns how often each task ran.
    fn counts(tasks: usize, min_chunk: usize, threads: usize) -> Vec<usize> {
        let seen: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
        parallel_for(tasks, min_chunk, threads, |range| {
            for t in range {
                seen[t].fetch_add(1, Ordering::Relaxed);
            }
        });
        seen.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }

    #[test]
    fn every_task_runs_once() {
        for tasks in [0, 1, 2, 3, 7, 64, 1000] {
            for min_chunk in [1, 3, 100] {
                for threads in 1..=6 {
                    let c = counts(tasks, min_chunk, threads);
                    if let Some(t) = c.iter().position(|&n| n != 1) {
                        panic!("tasks {tasks} min_chunk {min_chunk} threads {threads}: task {t} ran {} times", c[t]);
                    }
                }
            }
        }
    }

    #[test]
    fn pool_workers_take_the_other_chunks() {
        // Another test may hold the pool for a moment; wait for it.
        let mut workers = loop {
            if let Some(w) = pool::claim() {
                break w;
            }
            std::thread::yield_now();
        };
        let me = std::thread::current().id();
        let ran: Mutex<Vec<(usize, ThreadId, Option<String>)>> = Mutex::new(Vec::new());
        for _ in 0..3 {
            ran.lock().unwrap().clear();
            workers.run(4, &|c: usize| c..c + 1, &|r: Range<usize>| {
                let t = std::thread::current();
                ran.lock().unwrap().push((r.start, t.id(), t.name().map(str::to_owned)));
            });
            let mut ran = ran.lock().unwrap().clone();
            ran.sort_by_key(|r| r.0);
            assert_eq!(ran.iter().map(|r| r.0).collect::<Vec<_>>(), [0, 1, 2, 3], "chunks run: {ran:?}");
            assert_eq!(ran[0].1, me, "chunk 0 must run on the caller: {ran:?}");
            for r in &ran[1..] {
                assert_ne!(r.1, me, "chunk {} ran on the caller", r.0);
                assert_eq!(r.2.as_deref(), Some("mlak-worker"), "chunk {} ran off the pool", r.0);
            }
        }
    }

    #[test]
    fn worker_panic_reaches_caller() {
        for round in 0..3 {
            let result = catch_unwind(AssertUnwindSafe(|| {
                parallel_for(4, 1, 4, |r| {
                    if r.start == 2 {
                        panic!("chunk 2 fails");
                    }
                })
            }));
            let payload = result.expect_err("the worker's panic must reach the caller");
            let msg = payload.downcast_ref::<&str>().copied().unwrap_or("");
            assert_eq!(msg, "chunk 2 fails", "round {round}");
            assert!(counts(100, 1, 4).iter().all(|&n| n == 1), "round {round}: pool broken after a panic");
        }
    }

    #[test]
    fn caller_panic_waits_for_the_workers() {
        let finished: Vec<AtomicBool> = (0..4).map(|_| AtomicBool::new(false)).collect();
        let result = catch_unwind(AssertUnwindSafe(|| {
            parallel_for(4, 1, 4, |r| {
                if r.start == 0 {
                    panic!("chunk 0 fails");
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
                finished[r.start].store(true, Ordering::SeqCst);
            })
        }));
        assert!(result.is_err(), "the caller's panic must propagate");
        for (c, f) in finished.iter().enumerate().skip(1) {
            assert!(f.load(Ordering::SeqCst), "chunk {c} was still running when the panic left parallel_for");
        }
    }

    #[test]
    fn concurrent_callers_get_all_tasks() {
        std::thread::scope(|s| {
            for caller in 0..4 {
                s.spawn(move || {
                    for round in 0..200 {
                        let tasks = 1 + (caller * 37 + round * 11) % 97;
                        let c = counts(tasks, 1, 3);
                        assert!(c.iter().all(|&n| n == 1), "caller {caller} round {round}: counts {c:?}");
                    }
                });
            }
        });
    }
}
