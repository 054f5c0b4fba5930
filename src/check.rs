//! JIT against reference on one network: the same random weights and input
//! through both backends, and how far apart their outputs are, each output
//! element against its own tolerance ([`Agreement`]). This is `cnnjit
//! check` as a library: a user's test that the compiled kernels compute
//! their network, the oracle of this crate's tests, and the deterministic
//! inputs and weights ([`random_input`], [`lively_weights`]) they use.
//!
//! ```
//! use cnnjit::check::jit_against_reference;
//! use cnnjit::lang::compile_source;
//!
//! let net = compile_source("Small(8x8x3) { conv(4, 3x3), relu, flatten, dense(5) }")
//!     .expect("the net compiles")
//!     .remove(0);
//! let agreement = jit_against_reference(&net.graph, 7, cnnjit::Options::default())?;
//! assert!(agreement.within_tolerance, "{agreement:?}");
//! assert_eq!(agreement.len, 5);
//! # Ok::<(), cnnjit::Error>(())
//! ```

use crate::runtime::memory::Budget;
use crate::runtime::params::{reserve_weights, tensor_specs};
use crate::{Error, Graph, Model, Options, Weights};

/// How far the JIT's output is from the reference's.
///
/// Each output element `i` has its own tolerance, [`tolerance`]`(|ref_i|,
/// typical)`: `1e-5 + 1e-4 x max(|ref_i|, typical)`, where `typical` is the
/// median of the output's nonzero `|ref|` (a ReLU's zeros agree exactly and
/// say nothing of the scale). An element is thus allowed 1e-4 of its own
/// magnitude, and never less than 1e-4 of a typical output's: outputs near
/// zero come from cancellation, where `f32` accumulation (the JIT) against
/// `f64` (the reference) errs by the size of the terms, not of the sum. One
/// large output raises its own tolerance only (the median moves only if
/// half the nonzero outputs are large): with the old rule (1e-4 of the
/// largest output for every element) a single outlier of 1e4 let every
/// other output be off by 1.
///
/// A NaN or an infinity in either output is a failure, whatever the rest.
#[derive(Clone, Debug, PartialEq)]
pub struct Agreement {
    /// The largest `|jit - reference|` over the elements finite in both.
    pub max_abs: f64,
    /// The largest `|jit - reference| / |reference|` over elements where the reference is
    /// finite and not 0.
    pub max_rel: f64,
    /// The output's scale: the largest finite `|reference|`.
    pub scale: f64,
    /// A typical output's magnitude: the median of the finite, nonzero `|reference|`.
    pub typical: f64,
    /// The largest `|jit - reference|` as a fraction of that element's
    /// [`tolerance`]: at most 1 when every element is within its tolerance.
    pub worst: f64,
    /// Output elements.
    pub len: usize,
    /// Elements that are NaN or infinite in either output.
    pub non_finite: usize,
    /// Whether every element is finite in both outputs and within its
    /// [`tolerance`] of the reference.
    pub within_tolerance: bool,
    /// Which backend the JIT model really ran (it falls back where the host is unsupported).
    pub backend: crate::runtime::model::Backend,
}

/// The tolerance of an output element whose reference value has magnitude
/// `reference`, in an output whose median magnitude is `typical` (see
/// [`Agreement`]).
pub fn tolerance(reference: f64, typical: f64) -> f64 {
    1e-5 + 1e-4 * reference.max(typical)
}

impl Agreement {
    /// How far `actual` (the JIT's output) is from `expected` (the
    /// reference's), element by element; `backend` is the JIT model's.
    pub fn between(
        actual: &[f32],
        expected: &[f32],
        backend: crate::runtime::model::Backend,
    ) -> Agreement {
        let finite = |x: &f32| x.is_finite();
        let mut magnitudes: Vec<f64> = expected
            .iter()
            .filter(|x| finite(x))
            .map(|x| f64::from(x.abs()))
            .collect();
        magnitudes.sort_by(f64::total_cmp);
        let scale = magnitudes.last().copied().unwrap_or(0.0);
        let zeros = magnitudes.partition_point(|m| *m == 0.0);
        let nonzero = &magnitudes[zeros..];
        let typical = nonzero.get(nonzero.len() / 2).copied().unwrap_or(0.0);
        let (mut max_abs, mut max_rel, mut worst) = (0.0f64, 0.0f64, 0.0f64);
        let mut non_finite = 0;
        for (a, b) in actual.iter().zip(expected) {
            if !finite(a) || !finite(b) {
                non_finite += 1;
                continue;
            }
            let (a, b) = (f64::from(*a), f64::from(*b));
            let diff = (a - b).abs();
            max_abs = max_abs.max(diff);
            if b != 0.0 {
                max_rel = max_rel.max(diff / b.abs());
            }
            worst = worst.max(diff / tolerance(b.abs(), typical));
        }
        Agreement {
            within_tolerance: non_finite == 0 && worst <= 1.0,
            max_abs,
            max_rel,
            scale,
            typical,
            worst,
            len: expected.len(),
            non_finite,
            backend,
        }
    }
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
/// and variance and prelu slopes in `[0.5, 1.5)`, shift and mean in `±0.1`.
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
/// the reference kernels and on the JIT built with `options`. The weights
/// and both models are taken from one budget of
/// [`Options::memory_limit`](crate::Options::memory_limit): more than it
/// holds is an [`Error::OutOfMemory`], before the weights are made.
pub fn jit_against_reference(
    graph: &Graph,
    seed: u64,
    options: Options,
) -> Result<Agreement, Error> {
    let mut budget = Budget::new(options.memory_limit);
    reserve_weights(graph, &mut budget)?;
    let weights = lively_weights(graph, seed);
    let input = random_input(graph.input_shape().len() as usize, seed);
    compare(graph, &weights, &input, options, &mut budget)
}

/// Runs `graph` with `weights` on `input` on the reference kernels and on
/// the JIT built with `options`; both models are taken from one budget of
/// [`Options::memory_limit`](crate::Options::memory_limit).
pub fn jit_against_reference_with(
    graph: &Graph,
    weights: &Weights,
    input: &[f32],
    options: Options,
) -> Result<Agreement, Error> {
    let mut budget = Budget::new(options.memory_limit);
    compare(graph, weights, input, options, &mut budget)
}

/// The reference model and the JIT model, both from `budget`, on `input`.
fn compare(
    graph: &Graph,
    weights: &Weights,
    input: &[f32],
    options: Options,
    budget: &mut Budget,
) -> Result<Agreement, Error> {
    let reference_options = Options {
        reference: true,
        ..Options::default()
    };
    let mut reference = Model::with_budget(graph.clone(), weights, reference_options, budget)?;
    let jit_options = Options {
        reference: false,
        ..options
    };
    let mut jit = Model::with_budget(graph.clone(), weights, jit_options, budget)?;
    let expected = reference.forward(input)?;
    let actual = jit.forward(input)?;
    Ok(Agreement::between(
        &actual,
        &expected,
        jit.backend().clone(),
    ))
}
