//! Batched inference: which steps of a plan run once for a whole batch, and
//! the memory a batch takes.
//!
//! A network's *dense tail* ([`dense_tail`]) is the longest run of steps at
//! the end of its plan that are dense layers, each reading only the value
//! the one before it wrote (the first reading any whole value): a
//! classifier. A batch runs every other step image by image in the
//! one-image arena ([`Plan::arena_bytes`]), collects each image's input to
//! the tail in a buffer, and runs each tail step once for the whole chunk of
//! images, so its weights are read once per chunk rather than once per
//! image. The tail's values live in two buffers of [`BATCH_CHUNK`] images at
//! most, values alternating between them (the tail's input in the first,
//! unless it is the network's input, which the caller's batch holds; the
//! last step writes the caller's outputs). A larger batch runs in chunks of
//! [`BATCH_CHUNK`] images, so a batch's memory is bounded whatever its size:
//! [`peak_inference_bytes`].

use crate::plan::{Plan, ValueId};
use crate::{Graph, Op};

/// The most images a batch runs through its dense tail at once: larger
/// batches run in chunks of this many (the batched dense kernel keeps a
/// chunk's partial sums on its stack: `cnnjit_codegen::native_dense_batch`).
pub const BATCH_CHUNK: u64 = 32;

/// A plan's dense tail (module doc).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DenseTail {
    /// The index of its first step.
    pub first: usize,
    /// The value its first step reads.
    pub input: ValueId,
    /// `f32`s per image of each of the two buffers: the longest value each
    /// holds.
    pub buffers: [u64; 2],
}

impl DenseTail {
    /// Bytes of its buffers per image of a chunk.
    pub fn bytes_per_image(&self) -> u64 {
        4 * (self.buffers[0] + self.buffers[1])
    }
}

/// `plan`'s dense tail, if its last step is a dense layer (module doc).
pub fn dense_tail(graph: &Graph, plan: &Plan) -> Option<DenseTail> {
    let batched = |i: usize| {
        let step = &plan.steps[i];
        let whole = |v: ValueId| plan.values[v.0 as usize].slice.is_none();
        matches!(graph.node(step.nodes[0]).op, Op::Dense(_))
            && step.inputs.len() == 1
            && step.keeps.is_none()
            && whole(step.inputs[0])
            && whole(step.output)
            && (i + 1 == plan.steps.len() || plan.steps[i + 1].inputs == [step.output])
    };
    let mut first = plan.steps.len();
    while first > 0 && batched(first - 1) {
        first -= 1;
    }
    let steps = &plan.steps[first..];
    let input = steps.first()?.inputs[0];
    // Position 0 is the tail's input, position p > 0 the output of the tail's
    // step p - 1; the last step's output is the caller's.
    let held = std::iter::once(input).chain(steps[..steps.len() - 1].iter().map(|s| s.output));
    let mut buffers = [0u64; 2];
    for (p, v) in held.enumerate() {
        if v != ValueId(0) {
            buffers[p % 2] = buffers[p % 2].max(plan.values[v.0 as usize].len);
        }
    }
    Some(DenseTail {
        first,
        input,
        buffers,
    })
}

/// Bytes a batch of `batch` images takes beside the weights: the one-image
/// arena (`arena_bytes`, the macro's `PEAK_INFERENCE_BYTES`) and, for a
/// batch of more than one image, the dense tail's buffers
/// ([`DenseTail::bytes_per_image`], 0 without a tail) for a chunk of at most
/// [`BATCH_CHUNK`] images. Saturates rather than overflows.
pub const fn peak_inference_bytes(arena_bytes: u64, tail_bytes_per_image: u64, batch: u64) -> u64 {
    let chunk = if batch < BATCH_CHUNK {
        batch
    } else {
        BATCH_CHUNK
    };
    if chunk <= 1 {
        arena_bytes
    } else {
        arena_bytes.saturating_add(tail_bytes_per_image.saturating_mul(chunk))
    }
}
