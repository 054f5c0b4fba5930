//! JIT against reference on one network: the same random weights and input
//! through both backends, and how far apart their outputs are. Used by
//! `cnnjit check` and by the tests that run every example network.

use crate::runtime::params::random_weights;
use crate::{Error, Graph, Model, Options};

/// How far the JIT's output is from the reference's.
#[derive(Clone, Debug, PartialEq)]
pub struct Agreement {
    /// The largest `|jit - reference|`.
    pub max_abs: f64,
    /// The largest `|jit - reference| / |reference|` over elements where the reference is not 0.
    pub max_rel: f64,
    /// Whether every element satisfies `|jit - reference| <= 1e-5 + 1e-4 |reference|`.
    pub within_tolerance: bool,
    /// Which backend the JIT model really ran (it falls back where the host is unsupported).
    pub backend: crate::runtime::model::Backend,
}

/// A deterministic input in [-1, 1) from `seed`.
pub fn random_input(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            // xorshift64*: a fixed, documented sequence, not a statistical claim.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let r = state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
            r as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Runs `graph` with weights and input from `seed` on both backends, with `threads` for the JIT.
pub fn jit_against_reference(graph: &Graph, seed: u64, threads: usize) -> Result<Agreement, Error> {
    let weights = random_weights(graph, seed);
    let mut reference = Model::with_options(
        graph.clone(),
        &weights,
        Options {
            reference: true,
            ..Options::default()
        },
    )?;
    let mut jit = Model::with_options(
        graph.clone(),
        &weights,
        Options {
            threads,
            ..Options::default()
        },
    )?;
    let input = random_input(reference.input_len(), seed);
    let expected = reference.forward(&input)?;
    let actual = jit.forward(&input)?;
    let (mut max_abs, mut max_rel, mut within_tolerance) = (0.0f64, 0.0f64, true);
    for (a, b) in actual.iter().zip(&expected) {
        let diff = (f64::from(*a) - f64::from(*b)).abs();
        max_abs = max_abs.max(diff);
        if *b != 0.0 {
            max_rel = max_rel.max(diff / f64::from(b.abs()));
        }
        within_tolerance &= diff <= 1e-5 + 1e-4 * f64::from(b.abs());
    }
    Ok(Agreement {
        max_abs,
        max_rel,
        within_tolerance,
        backend: jit.backend().clone(),
    })
}
