//! Timing a model, for `cnnjit bench` and `cnnjit compare --bench`: the
//! median latency of forward passes on deterministic input. Speed is
//! reported, never asserted: these machines are shared and noisy.

use cnnjit::runtime::memory::Budget;
use cnnjit::{Error, Model};
use std::time::{Duration, Instant};

/// Latencies measured for one model.
#[derive(Clone, Debug, PartialEq)]
pub struct Timing {
    /// The median, in milliseconds.
    pub median_ms: f64,
    /// How many runs were timed (after one warm-up run).
    pub runs: usize,
}

/// Times `model.forward_batch` on `batch` images: one warm-up, then runs
/// until at least `min_runs` and `duration` have passed (at most 1000 runs).
/// A batch whose inputs and outputs do not fit in `memory` (what the
/// command's budget has left; they are freed on return, so the caller's
/// budget is not charged) is an [`Error::OutOfMemory`], before anything is
/// allocated.
pub fn time_forward(
    model: &mut Model,
    batch: usize,
    min_runs: usize,
    duration: Duration,
    mut memory: Budget,
) -> Result<Timing, Error> {
    let batch = batch.max(1);
    let what = |buffers: &str| format!("the {buffers} of a batch of {batch} images");
    let (in_len, out_len) = (
        model.input_len().saturating_mul(batch),
        model.output_len().saturating_mul(batch),
    );
    memory.take((in_len as u64).saturating_mul(4), || what("inputs"))?;
    let mut output = memory.zeroed(out_len, || what("outputs"))?;
    let input = cnnjit::check::random_input(in_len, 1);
    model.forward_batch(&input, &mut output)?;
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < min_runs.max(1) || (start.elapsed() < duration && times.len() < 1000) {
        let t = Instant::now();
        model.forward_batch(&input, &mut output)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(Timing {
        median_ms: times[times.len() / 2],
        runs: times.len(),
    })
}

/// Profiles `model` step by step (see [`Model::profile`]) on deterministic
/// input: as many passes as fit in `budget` after a timed warm-up, at least
/// `min_runs` and at most 1000.
#[cfg(feature = "jit")]
pub fn profile(
    model: &mut Model,
    min_runs: usize,
    budget: Duration,
) -> Result<cnnjit::runtime::report::Profile, Error> {
    let input = cnnjit::check::random_input(model.input_len(), 1);
    let start = Instant::now();
    model.forward(&input)?;
    let pass = start.elapsed().as_secs_f64().max(1e-9);
    let runs = ((budget.as_secs_f64() / pass) as usize).clamp(min_runs.max(1), 1000);
    model.profile(&input, runs)
}
