//! Timing a model, for `cnnjit compare --bench` (and `cnnjit bench`): the
//! median latency of single-image forward passes on deterministic input.
//! Speed is reported, never asserted: these machines are shared and noisy.

use crate::{Error, Model};
use std::time::{Duration, Instant};

/// Latencies measured for one model.
#[derive(Clone, Debug, PartialEq)]
pub struct Timing {
    /// The median, in milliseconds.
    pub median_ms: f64,
    /// How many runs were timed (after one warm-up run).
    pub runs: usize,
}

/// Times `model.forward_into` on one image: one warm-up, then runs until at
/// least `min_runs` and `budget` have passed (at most 1000 runs).
pub fn time_forward(model: &mut Model, min_runs: usize, budget: Duration) -> Result<Timing, Error> {
    let input: Vec<f32> = (0..model.input_len())
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let mut output = vec![0.0; model.output_len()];
    model.forward_into(&input, &mut output)?;
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < min_runs.max(1) || (start.elapsed() < budget && times.len() < 1000) {
        let t = Instant::now();
        model.forward_into(&input, &mut output)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(Timing {
        median_ms: times[times.len() / 2],
        runs: times.len(),
    })
}
