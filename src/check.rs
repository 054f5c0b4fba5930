//! JIT against reference on one network: the same random weights and input
//! through both backends, and how far apart their outputs are. Used by
//! `cnnjit check` and by the tests that run every example network.

use crate::runtime::memory::Budget;
use crate::runtime::params::{reserve_weights, tensor_specs};
use crate::{Error, Graph, Model, Options, Weights};

/// How far the JIT's output is from the reference's.
#[derive(Clone, Debug, PartialEq)]
pub struct Agreement {
    /// The largest `|jit - reference|`.
    pub max_abs: f64,
    /// The largest `|jit - reference| / |reference|` over elements where the reference is not 0.
    pub max_rel: f64,
    /// The output's scale: the largest `|reference|`.
    pub scale: f64,
    /// Whether every element is within `1e-5 + 1e-4 x scale` of the reference:
    /// 1e-4 relative to the output's scale. (Element-wise relative error is no
    /// measure for a whole network: the reference accumulates in `f64`, the JIT
    /// in `f32`, and outputs near zero come from cancellation.)
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

/// Weights that keep a deep network's activations of order one, so that a
/// comparison exercises every layer (PyTorch's default initialisation shrinks
/// them towards zero, where two backends agree trivially): conv and dense
/// weights uniform in `±sqrt(6 / fan_in)` (He), biases in `±0.1`, bn scale
/// and variance in `[0.5, 1.5)`, shift and mean in `±0.1`.
pub fn lively_weights(graph: &Graph, seed: u64) -> Weights {
    let mut weights = Weights::new();
    for (i, spec) in tensor_specs(graph).into_iter().enumerate() {
        let len: usize = spec.shape.iter().product();
        let u = random_input(len, seed ^ (i as u64 + 1).wrapping_mul(0x2545_F491));
        let name = spec.name.as_str();
        let data: Vec<f32> = if spec.fan_in > 0 && name.ends_with(".weight") {
            let bound = (6.0 / spec.fan_in as f32).sqrt();
            u.iter().map(|x| x * bound).collect()
        } else if name.ends_with(".running_var") || (spec.fan_in == 0 && name.ends_with(".weight"))
        {
            u.iter().map(|x| 1.0 + 0.5 * x).collect()
        } else {
            u.iter().map(|x| 0.1 * x).collect()
        };
        weights
            .insert(spec.name, spec.shape, data)
            .expect("each tensor gets its shape's length");
    }
    weights
}

/// Runs `graph` with weights ([`lively_weights`]) and input from `seed` on
/// the reference kernels and on the JIT built with `options`. Weights that
/// do not fit in memory are an [`Error::OutOfMemory`], before any is made.
pub fn jit_against_reference(
    graph: &Graph,
    seed: u64,
    options: Options,
) -> Result<Agreement, Error> {
    reserve_weights(graph, &mut Budget::new(None))?;
    let weights = lively_weights(graph, seed);
    let mut reference = Model::with_options(
        graph.clone(),
        &weights,
        Options {
            reference: true,
            ..Options::default()
        },
    )?;
    let jit_options = Options {
        reference: false,
        ..options
    };
    let mut jit = Model::with_options(graph.clone(), &weights, jit_options)?;
    let input = random_input(reference.input_len(), seed);
    let expected = reference.forward(&input)?;
    let actual = jit.forward(&input)?;
    let scale = expected
        .iter()
        .fold(0.0f64, |m, x| m.max(f64::from(x.abs())));
    let (mut max_abs, mut max_rel) = (0.0f64, 0.0f64);
    for (a, b) in actual.iter().zip(&expected) {
        let diff = (f64::from(*a) - f64::from(*b)).abs();
        max_abs = max_abs.max(diff);
        if *b != 0.0 {
            max_rel = max_rel.max(diff / f64::from(b.abs()));
        }
    }
    Ok(Agreement {
        within_tolerance: max_abs <= 1e-5 + 1e-4 * scale,
        max_abs,
        max_rel,
        scale,
        backend: jit.backend().clone(),
    })
}
