//! The threads a forward pass splits its kernels' rows across: the calling
//! thread and `threads - 1` helpers that spin between steps.
//!
//! A network's steps are short (MobileNetV2's 54 steps average 110 us on one
//! thread), so a split pays only if starting it costs a few microseconds. A
//! pool whose idle threads sleep costs a wake-up per step: rayon's
//! `install` from outside the pool took 28-52 us a split on a 2-vCPU host,
//! and MobileNetV2 gained 7% from a second thread. A [`Team`] is what
//! ONNX Runtime's and XNNPACK's (pthreadpool's) thread pools are: its
//! helpers spin on one atomic word for [`SPIN`] after their last part
//! before they park, and the caller runs parts itself instead of waiting.
//!
//! Invariants:
//! - [`Team::run`] calls `f(p)` exactly once for each `p` in `0..parts` and
//!   returns only when every call has returned, so `f` may borrow the
//!   caller's stack: no helper touches the job after that.
//! - A helper reaches the job only by claiming a part of the current
//!   generation (`CLAIM`: generation, parts and next part in one word,
//!   advanced by compare-and-swap), and the caller starts the next
//!   generation only after every claimed part has finished, so a helper
//!   that read a stale job pointer fails its claim and never calls it.
//! - The caller runs part 0 itself; helpers claim parts from 1 on. A split
//!   into one part a thread therefore puts the same share of every step's
//!   rows on the same thread (on two threads: the caller the first half),
//!   so a step reads mostly what its own core wrote (`jit::parts`).
//! - One job at a time: a `run` that finds the team busy (a clone of a
//!   model on another thread, or a part that runs a team) runs its parts
//!   on the calling thread.
//! - It allocates nothing per job (the no-allocation test runs a
//!   forward pass on two threads).

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle helper spins before it parks: longer than the gap a
/// step run on one thread (below `jit::PARALLEL_WORK`, about 80 us) leaves
/// between two split ones, short enough that a program that stops calling
/// the model gets its cores back at once.
pub const SPIN: Duration = Duration::from_millis(1);

/// The most parts one [`Team::run`] splits among threads; more run on the
/// calling thread alone (a split gives each thread one part).
pub const MAX_PARTS: usize = u16::MAX as usize;

/// The calling thread and `threads - 1` spinning helpers.
pub struct Team {
    shared: Arc<Shared>,
    helpers: Vec<JoinHandle<()>>,
    /// Held while a job runs, so jobs never overlap.
    busy: AtomicBool,
    /// The last generation started; only the holder of `busy` writes it.
    generation: AtomicU64,
}

/// A job: the caller's closure behind a thin pointer and the function that
/// calls it.
struct Job {
    data: *const (),
    call: unsafe fn(*const (), usize),
}

struct Shared {
    /// `generation << 32 | parts << 16 | next part`.
    claim: AtomicU64,
    /// The current generation's job, on the caller's stack.
    job: AtomicPtr<Job>,
    /// Parts of the current generation that have returned.
    done: AtomicUsize,
    /// A part of the current generation panicked.
    panicked: AtomicBool,
    stop: AtomicBool,
    /// Helpers parked (or about to park) on `wake`.
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

fn generation(claim: u64) -> u64 {
    claim >> 32
}

fn parts(claim: u64) -> usize {
    (claim >> 16) as usize & MAX_PARTS
}

fn next(claim: u64) -> usize {
    claim as usize & MAX_PARTS
}

impl Team {
    /// A team of `threads` (the caller counts as one; at least one).
    pub fn new(threads: usize) -> std::io::Result<Team> {
        let shared = Arc::new(Shared {
            claim: AtomicU64::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut team = Team {
            shared,
            helpers: Vec::new(),
            busy: AtomicBool::new(false),
            generation: AtomicU64::new(0),
        };
        for i in 1..threads.max(1) {
            let shared = Arc::clone(&team.shared);
            let helper = std::thread::Builder::new()
                .name(format!("cnnjit-{i}"))
                .spawn(move || help(&shared))?;
            // On an error, `team` drops here and stops the helpers started.
            team.helpers.push(helper);
        }
        Ok(team)
    }

    /// Threads that run a job's parts, the caller included.
    pub fn threads(&self) -> usize {
        self.helpers.len() + 1
    }

    /// Calls `f(p)` once for every `p` in `0..parts`, spread over the team,
    /// and returns when all have returned. A panic in a part is raised
    /// again here, after every part has finished. Part 0 runs on the
    /// calling thread (unless the team is busy, all of them do).
    pub fn run<F: Fn(usize) + Sync>(&self, parts: usize, f: F) {
        let alone = parts <= 1 || parts > MAX_PARTS || self.helpers.is_empty();
        if alone || self.busy.swap(true, Ordering::Acquire) {
            (0..parts).for_each(f);
            return;
        }
        let job = Job {
            data: (&f as *const F).cast(),
            call: call::<F>,
        };
        let shared = &*self.shared;
        let generation = self.generation.load(Ordering::Relaxed) + 1;
        self.generation.store(generation, Ordering::Relaxed);
        shared.done.store(0, Ordering::Relaxed);
        shared.panicked.store(false, Ordering::Relaxed);
        shared
            .job
            .store((&job as *const Job).cast_mut(), Ordering::Relaxed);
        // SeqCst, with the helper's increment of `sleepers` before its last
        // look at `claim`: one of the two sees the other's write, so a
        // parking helper is never left asleep with a job waiting.
        shared.claim.store(
            generation << 32 | (parts as u64) << 16 | 1,
            Ordering::SeqCst,
        );
        if shared.sleepers.load(Ordering::SeqCst) > 0 {
            let _lock = shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            shared.wake.notify_all();
        }
        // SAFETY: part 0 was never offered to a helper (the claim word
        // starts at part 1), and `job` lives until every part is done.
        unsafe { run_part(shared, &job, 0) };
        work(shared, generation);
        let mut spins = 0u32;
        while shared.done.load(Ordering::Acquire) < parts {
            spins = backoff(spins);
        }
        self.busy.store(false, Ordering::Release);
        if shared.panicked.load(Ordering::Relaxed) {
            resume_unwind(Box::new("a part of a split kernel call panicked"));
        }
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        let shared = &*self.shared;
        {
            let _lock = shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            shared.stop.store(true, Ordering::SeqCst);
            shared.wake.notify_all();
        }
        for helper in self.helpers.drain(..) {
            // A helper catches its parts' panics, so it never ends in one.
            let _ = helper.join();
        }
    }
}

impl std::fmt::Debug for Team {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Team")
            .field("threads", &self.threads())
            .finish()
    }
}

/// # Safety
/// `data` points to a live `F`.
unsafe fn call<F: Fn(usize)>(data: *const (), part: usize) {
    // SAFETY: `Team::run` made `data` from an `&F` that outlives every call
    // (it waits for all of them), and the caller vouches for the type.
    let f = unsafe { &*data.cast::<F>() };
    f(part);
}

/// Claims and runs parts of `generation` until none is left.
fn work(shared: &Shared, generation_seen: u64) {
    loop {
        let claim = shared.claim.load(Ordering::Acquire);
        if generation(claim) != generation_seen || next(claim) >= parts(claim) {
            return;
        }
        let job = shared.job.load(Ordering::Acquire);
        if shared
            .claim
            .compare_exchange_weak(claim, claim + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            continue;
        }
        // SAFETY: the claim succeeded, so part `next(claim)` of generation
        // `generation_seen` is ours and not yet done: the caller of that
        // generation is still waiting in `Team::run`, so its `Job` (and the
        // closure it points to) is alive, and `job` is that generation's
        // pointer (it was stored before the claim word that started the
        // generation, and the next generation's is stored only after every
        // part, ours included, is done).
        unsafe { run_part(shared, job, next(claim)) };
    }
}

/// Runs `part` of `job`, noting a panic, and counts it done.
///
/// # Safety
/// `job` points to the current generation's live `Job`, and `part` is this
/// thread's alone (claimed, or part 0 on the caller).
unsafe fn run_part(shared: &Shared, job: *const Job, part: usize) {
    // SAFETY: by the caller's contract.
    let ran = catch_unwind(AssertUnwindSafe(|| unsafe {
        let job = &*job;
        (job.call)(job.data, part);
    }));
    if ran.is_err() {
        shared.panicked.store(true, Ordering::Relaxed);
    }
    shared.done.fetch_add(1, Ordering::Release);
}

/// A helper: waits for a new generation (spinning for [`SPIN`], then
/// parked), works on it, and again, until the team drops.
fn help(shared: &Shared) {
    let mut seen = 0;
    loop {
        let mut spins = 0u32;
        let start = Instant::now();
        let claim = loop {
            let claim = shared.claim.load(Ordering::Acquire);
            if generation(claim) != seen {
                break claim;
            }
            if shared.stop.load(Ordering::Relaxed) {
                return;
            }
            spins = backoff(spins);
            if spins.is_multiple_of(256) && start.elapsed() > SPIN {
                park(shared, seen);
            }
        };
        seen = generation(claim);
        work(shared, seen);
    }
}

/// Parks until a generation other than `seen` starts or the team stops.
fn park(shared: &Shared, seen: u64) {
    let mut lock = shared.lock.lock().unwrap_or_else(|e| e.into_inner());
    shared.sleepers.fetch_add(1, Ordering::SeqCst);
    while generation(shared.claim.load(Ordering::SeqCst)) == seen
        && !shared.stop.load(Ordering::SeqCst)
    {
        lock = shared.wake.wait(lock).unwrap_or_else(|e| e.into_inner());
    }
    shared.sleepers.fetch_sub(1, Ordering::SeqCst);
}

/// Spins, then also yields the core, while waiting for another thread: on
/// a host with more runnable threads than cores, a spinning thread would
/// otherwise keep the one it waits for off the core for a whole time slice.
fn backoff(spins: u32) -> u32 {
    if spins < 2048 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
    spins.wrapping_add(1)
}

#[cfg(test)]
mod tests {
    use super::Team;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counts(team: &Team, parts: usize) -> Vec<usize> {
        let hits: Vec<AtomicUsize> = (0..parts).map(|_| AtomicUsize::new(0)).collect();
        team.run(parts, |p| {
            hits[p].fetch_add(1, Ordering::Relaxed);
        });
        hits.into_iter().map(AtomicUsize::into_inner).collect()
    }

    #[test]
    fn every_part_runs_exactly_once_for_any_team_and_split() {
        for threads in 1..=4 {
            let team = Team::new(threads).expect("threads start");
            assert_eq!(team.threads(), threads);
            for round in 0..200 {
                let parts = round % 17;
                assert_eq!(
                    counts(&team, parts),
                    vec![1; parts],
                    "{threads} threads, {parts} parts"
                );
            }
        }
    }

    #[test]
    fn the_caller_runs_part_zero() {
        let team = Team::new(2).expect("threads start");
        let caller = std::thread::current().id();
        for parts in 2..40 {
            let first = std::sync::Mutex::new(None);
            team.run(parts, |p| {
                if p == 0 {
                    *first.lock().unwrap() = Some(std::thread::current().id());
                }
            });
            assert_eq!(first.into_inner().unwrap(), Some(caller), "{parts} parts");
        }
    }

    #[test]
    fn helpers_wake_after_parking() {
        let team = Team::new(2).expect("threads start");
        assert_eq!(counts(&team, 8), vec![1; 8]);
        std::thread::sleep(super::SPIN * 5);
        let seen = std::sync::Mutex::new(std::collections::HashSet::new());
        // Parts that wait for each other can only finish if the parked
        // helper woke: the caller alone would never leave the first one.
        let arrived = AtomicUsize::new(0);
        team.run(2, |_| {
            seen.lock().unwrap().insert(std::thread::current().id());
            arrived.fetch_add(1, Ordering::SeqCst);
            let start = std::time::Instant::now();
            while arrived.load(Ordering::SeqCst) < 2 && start.elapsed().as_secs() < 5 {
                std::hint::spin_loop();
            }
        });
        assert_eq!(seen.into_inner().unwrap().len(), 2);
    }

    #[test]
    fn a_nested_run_goes_on_the_calling_thread() {
        let team = Team::new(2).expect("threads start");
        let total = AtomicUsize::new(0);
        team.run(4, |_| {
            team.run(3, |_| {
                total.fetch_add(1, Ordering::Relaxed);
            });
        });
        assert_eq!(total.into_inner(), 12);
    }

    #[test]
    fn a_panicking_part_is_raised_on_the_caller_after_the_others() {
        let team = Team::new(2).expect("threads start");
        let finished = AtomicUsize::new(0);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            team.run(8, |p| {
                if p == 5 {
                    panic!("part five");
                }
                finished.fetch_add(1, Ordering::SeqCst);
            })
        }));
        assert!(result.is_err());
        assert_eq!(finished.load(Ordering::SeqCst), 7);
        assert_eq!(counts(&team, 6), vec![1; 6], "the team still works");
    }
}
