//! The executor: runs a [`Plan`] on one image with the reference kernels,
//! in one arena of exactly `Plan::arena_bytes` (the `PEAK_INFERENCE_BYTES`
//! the compiler reported), allocating nothing per call.
//!
//! A step's anchor reads its input values and writes its output value; its
//! epilogue nodes then run in place on that output, a residual's add reading
//! the step's extra input. The plan guarantees that a step's inputs and its
//! output never share memory, and this module checks it before every step
//! (an overlap is an internal error, never aliasing). The one exception is
//! the shortcut a step writes its output over (`plan::Step::over`), which is
//! not among the inputs checked: the output holds it when the step starts. A
//! compiled kernel adds it from there (`jit::Extra::Output`); the reference
//! kernels, whose anchor would write over it before the add reads it, add a
//! copy of it made in the working memory first.
//!
//! The image is never copied into the arena: steps read the plan's first
//! value from the caller's input buffer. The last step writes the caller's
//! output buffer directly unless its output is a concat whose inputs are
//! written in place in the arena (then the output is copied out once).
//!
//! A step whose output is a slice of a concat's output (`plan::Slice`) is
//! given the whole concat output: a compiled kernel writes its channels in
//! place, while the reference kernels, which write contiguous tensors, write
//! into the engine's working memory (the compiled kernels' scratch, which no
//! reference step uses, allocated once with the model and long enough for
//! both) and the step then scatters it into its channels. The concat step
//! skips the inputs already in place.

use crate::error::{Error, InternalError, Result};
use crate::ir::{Graph, Node, NodeId, Op};
use crate::memory::Budget;
use crate::params::{LayerParams, Params, Weight};
use crate::reference::{self as r, BatchNorm, Dims, KernelError};
use crate::team::Team;
use cnnjit_ir::plan::{self, Plan, Slice, Step, Value, ValueId, ALIGN_ELEMENTS};
use std::ops::Range;
use std::time::Instant;

/// A zeroed `f32` buffer whose first element is 64-byte aligned.
#[derive(Clone, Debug, Default)]
pub struct Arena {
    buf: Vec<f32>,
    start: usize,
    len: usize,
}

impl Arena {
    /// An arena of `bytes` bytes (rounded up to whole `f32`s), taken from
    /// `budget` (as `what`) with 64 more to align it, and allocated
    /// fallibly; none at all for 0 bytes.
    pub fn new(bytes: u64, budget: &mut Budget, what: impl Fn() -> String) -> Result<Arena> {
        if bytes == 0 {
            return Ok(Arena::default());
        }
        let len = usize::try_from(bytes.div_ceil(4))
            .ok()
            .filter(|len| len.checked_add(ALIGN_ELEMENTS as usize).is_some())
            .ok_or_else(|| Error::OutOfMemory {
                what: what(),
                bytes,
                left: None,
            })?;
        let buf: Vec<f32> = budget.zeroed(len + ALIGN_ELEMENTS as usize, what)?;
        let start = buf.as_ptr().align_offset(64).min(ALIGN_ELEMENTS as usize);
        Ok(Arena { buf, start, len })
    }

    /// The arena's elements.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.buf[self.start..self.start + self.len]
    }

    /// Its elements, shared.
    pub fn as_slice(&self) -> &[f32] {
        &self.buf[self.start..self.start + self.len]
    }

    /// Its size in bytes.
    pub fn bytes(&self) -> u64 {
        self.len as u64 * 4
    }
}

fn range(value: &Value) -> Range<usize> {
    value.offset as usize..(value.offset + value.len) as usize
}

/// The arena a value's step writes: a slice's is its parent's whole tensor.
fn memory(plan: &Plan, value: ValueId) -> Range<usize> {
    let value = &plan.values[value.0 as usize];
    match value.slice {
        Some(slice) => range(&plan.values[slice.of.0 as usize]),
        None => range(value),
    }
}

/// Whether `value` lives in a slice of a concat's output.
fn is_slice(plan: &Plan, value: ValueId) -> bool {
    plan.values[value.0 as usize].slice.is_some()
}

/// A step's input tensors, shared, beside its output borrowed mutably:
/// views into the arena on either side of the output, found by value
/// without allocating.
struct Inputs<'a> {
    left: &'a [f32],
    right: &'a [f32],
    out: Range<usize>,
    ranges: &'a [(ValueId, Range<usize>)],
    /// The caller's input image, read in place of the plan's first value.
    image: &'a [f32],
    /// A copy of the shortcut the step's output is written over, if the
    /// reference kernels run it.
    staged: Option<(ValueId, &'a [f32])>,
}

impl<'a> Inputs<'a> {
    /// Value `value`, or `None` if the step does not read it; `carve`
    /// checked that every range lies on one side of the output.
    fn get(&self, value: ValueId) -> Option<&'a [f32]> {
        if let Some((_, staged)) = self.staged.filter(|(v, _)| *v == value) {
            return Some(staged);
        }
        let (_, r) = self.ranges.iter().find(|(v, _)| *v == value)?;
        Some(if value == IMAGE {
            self.image
        } else if r.end <= self.out.start {
            &self.left[r.clone()]
        } else {
            &self.right[r.start - self.out.end..r.end - self.out.end]
        })
    }
}

/// The tensor of node `id`'s output among `inputs`, or an internal error
/// naming `node` (the reader) if its step does not read it.
fn operand<'a>(engine: &Engine, inputs: &Inputs<'a>, node: &Node, id: NodeId) -> Result<&'a [f32]> {
    value(inputs, node, engine.plan.node_values[id.index()])
}

/// Value `v` among `inputs`, or an internal error naming `node` (the reader).
fn value<'a>(inputs: &Inputs<'a>, node: &Node, v: ValueId) -> Result<&'a [f32]> {
    inputs.get(v).ok_or_else(|| {
        node_error(
            node,
            InternalError::Broken("a step reads a value it does not list"),
        )
    })
}

/// The output range mutably and the input ranges shared, or `None` if an input
/// overlaps the output or a range lies outside the arena.
fn carve<'a>(
    arena: &'a mut [f32],
    out: Range<usize>,
    ranges: &'a [(ValueId, Range<usize>)],
    image: &'a [f32],
) -> Option<(&'a mut [f32], Inputs<'a>)> {
    if out.end > arena.len() {
        return None;
    }
    let (left, rest) = arena.split_at_mut(out.start);
    let (output, right) = rest.split_at_mut(out.len());
    let fits = ranges.iter().all(|(_, r)| {
        r.start <= r.end
            && (r.end <= out.start || (r.start >= out.end && r.end <= out.end + right.len()))
    });
    fits.then_some((
        output,
        Inputs {
            left,
            right,
            out,
            ranges,
            image,
            staged: None,
        },
    ))
}

/// The input ranges shared, for a step that writes outside the arena, or
/// `None` if a range lies outside it.
fn view<'a>(
    arena: &'a [f32],
    ranges: &'a [(ValueId, Range<usize>)],
    image: &'a [f32],
) -> Option<Inputs<'a>> {
    let fits = ranges
        .iter()
        .all(|(_, r)| r.start <= r.end && r.end <= arena.len());
    fits.then_some(Inputs {
        left: arena,
        right: &[],
        out: arena.len()..arena.len(),
        ranges,
        image,
        staged: None,
    })
}

/// The plan's first value: the image, which steps read from the caller's
/// buffer rather than from a copy in the arena.
const IMAGE: ValueId = ValueId(0);

/// Whether the last step can write the caller's output buffer directly: its
/// output is a whole tensor of its own, not the image, and no earlier step
/// writes a slice of it in the arena.
fn writes_output_directly(plan: &Plan) -> bool {
    plan.steps.last().is_some_and(|last| {
        let value = last.output;
        value != IMAGE
            && plan.values[value.0 as usize].slice.is_none()
            && plan
                .values
                .iter()
                .all(|v| v.slice.is_none_or(|slice| slice.of != value))
    })
}

/// Every step's output range and the ranges of the values it reads (and
/// the value it keeps, if any) in the arena, computed once. A slice, which
/// only its concat reads and which is already in place there, is read as
/// nothing; the shortcut the output is written over is the output's range
/// and not listed.
fn step_ranges(plan: &Plan) -> Vec<StepRanges> {
    plan.steps
        .iter()
        .map(|step| {
            let ins = step
                .inputs
                .iter()
                .chain(&step.keeps)
                .filter(|v| step.over != Some(**v))
                .map(|v| {
                    let range = if is_slice(plan, *v) {
                        0..0
                    } else {
                        range(&plan.values[v.0 as usize])
                    };
                    (*v, range)
                })
                .collect();
            (memory(plan, step.output), ins)
        })
        .collect()
}

/// A step's output range, and the values it reads with their ranges.
type StepRanges = (Range<usize>, Vec<(ValueId, Range<usize>)>);

/// What runs a plan: the graph, its plan and parameters, and, when the JIT
/// serves it, the compiled kernels and the threads that split their rows.
#[derive(Clone, Debug)]
pub struct Engine {
    /// The network.
    pub graph: Graph,
    /// Its steps and arena layout.
    pub plan: Plan,
    /// Its parameters for the reference kernels.
    pub params: Params,
    /// Compiled kernels, if any.
    #[cfg(feature = "jit")]
    pub compiled: Option<crate::jit::Compiled>,
    /// Threads for the compiled kernels.
    pub team: Option<std::sync::Arc<crate::team::Team>>,
    /// Per step, its output's and inputs' ranges in the arena.
    ranges: Vec<StepRanges>,
    /// The last step writes the caller's output buffer, not the arena.
    output_direct: bool,
}

impl Engine {
    /// An engine running `plan` on the reference kernels (`compiled` and
    /// `team` may be set afterwards).
    pub fn new(graph: Graph, plan: Plan, params: Params) -> Engine {
        Engine {
            ranges: step_ranges(&plan),
            output_direct: writes_output_directly(&plan),
            graph,
            plan,
            params,
            #[cfg(feature = "jit")]
            compiled: None,
            team: None,
        }
    }

    /// The working memory, in `f32`s, that [`run`] needs: the compiled
    /// kernels' scratch, or the output of the largest step that writes a
    /// slice or over its shortcut on the reference kernels, whichever is
    /// longer.
    pub fn scratch_len(&self) -> usize {
        let staging = (self.plan.steps.iter().enumerate())
            .filter(|(i, step)| {
                (is_slice(&self.plan, step.output) || step.over.is_some()) && self.on_reference(*i)
            })
            .map(|(_, step)| self.plan.values[step.output.0 as usize].len as usize)
            .max()
            .unwrap_or(0);
        #[cfg(feature = "jit")]
        if let Some(compiled) = &self.compiled {
            return staging.max(compiled.scratch_len(self.team.as_deref()));
        }
        staging
    }

    /// Whether step `index` runs on the reference kernels.
    fn on_reference(&self, index: usize) -> bool {
        #[cfg(feature = "jit")]
        if let Some(compiled) = &self.compiled {
            return matches!(compiled.steps[index], crate::jit::Lowering::Reference(_));
        }
        let _ = index;
        true
    }
}

/// Which kernel a compiled step runs: the image's (lowering's, for
/// `forward`) or the one the batch plan runs in its place, where it has one
/// (`cnnjit_codegen::batch::BatchPlan::kernels`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// Lowering's kernel for one image.
    Image,
    /// The batch plan's.
    Batch,
}

/// Runs one image: `input` in, `output` out; lengths are the caller's to
/// check. `scratch` is the compiled kernels' working memory
/// ([`Engine::scratch_len`] elements).
pub fn run(
    engine: &Engine,
    arena: &mut Arena,
    scratch: &mut [f32],
    input: &[f32],
    output: &mut [f32],
) -> Result<()> {
    run_on(engine, Kernels::Image, arena, scratch, input, output)
}

/// [`run`] on `kernels`: an image of a batch (a chunk's last, alone) runs
/// the batch plan's, so it agrees bitwise with the same image in any chunk.
pub fn run_on(
    engine: &Engine,
    kernels: Kernels,
    arena: &mut Arena,
    scratch: &mut [f32],
    input: &[f32],
    output: &mut [f32],
) -> Result<()> {
    let arena = arena.as_mut_slice();
    let team = engine.team.as_deref();
    for (i, step) in engine.plan.steps.iter().enumerate() {
        let out = output_of(engine, i, output);
        run_step(engine, (team, kernels), i, step, arena, scratch, input, out)?;
    }
    store_output(engine, arena, input, output)
}

/// Runs the plan's steps `steps` on a group of images: `inputs` holds them
/// whole, one after another, one per arena of `arenas` (the first, then the
/// rest), image `g` in arena `g`; where `steps` reaches the plan's end, its
/// output goes to the `g`-th of `outputs`' equal parts. A run of steps that
/// `step_by_step` marks (lowering's `BatchPlan::step_by_step`: their weights
/// outweigh their values) goes step by step, each step on every image
/// before the next, so its weights come from memory once for the group and
/// from the cache for its other images; any other run goes image by image,
/// each image's values staying in cache from one step to the next. Each image runs the kernels [`run_on`] runs, each
/// kernel's rows split across `team` (`None`: the calling thread), in its
/// own order of steps, on the batch plan's kernels, so its values are
/// bitwise its own run's through [`run_on`] with [`Kernels::Batch`].
#[allow(clippy::too_many_arguments)]
pub fn run_group(
    engine: &Engine,
    team: Option<&Team>,
    arenas: (&mut Arena, &mut [Arena]),
    scratch: &mut [f32],
    inputs: &[f32],
    mut outputs: Option<&mut [f32]>,
    steps: Range<usize>,
    step_by_step: &[bool],
) -> Result<()> {
    let (first, rest) = arenas;
    let images = 1 + rest.len();
    let n_in = inputs.len() / images;
    let n_out = outputs.as_ref().map_or(0, |y| y.len() / images);
    let end = steps.end.min(engine.plan.steps.len());
    let mut one = |i: usize, g: usize| {
        let arena = match g {
            0 => &mut *first,
            _ => &mut rest[g - 1],
        };
        let x = &inputs[g * n_in..(g + 1) * n_in];
        let out = outputs
            .as_deref_mut()
            .and_then(|y| y.get_mut(g * n_out..(g + 1) * n_out))
            .and_then(|y| output_of(engine, i, y));
        run_step(
            engine,
            (team, Kernels::Batch),
            i,
            &engine.plan.steps[i],
            arena.as_mut_slice(),
            scratch,
            x,
            out,
        )
    };
    let mut i = steps.start;
    while i < end {
        let bound = |j: usize| step_by_step.get(j).copied().unwrap_or(false);
        let j = (i..end).find(|&j| bound(j) != bound(i)).unwrap_or(end);
        if bound(i) {
            for step in i..j {
                for g in 0..images {
                    one(step, g)?;
                }
            }
        } else {
            for g in 0..images {
                for step in i..j {
                    one(step, g)?;
                }
            }
        }
        i = j;
    }
    if let (Some(y), true) = (outputs, end == engine.plan.steps.len()) {
        let arenas = std::iter::once(&*first).chain(rest.iter());
        for ((arena, x), y) in arenas
            .zip(inputs.chunks_exact(n_in))
            .zip(y.chunks_exact_mut(n_out))
        {
            store_output(engine, arena.as_slice(), x, y)?;
        }
    }
    Ok(())
}

/// Value `v` of one image: the input for the plan's first value, else its
/// elements in the arena (where [`run_group`] left it), or an internal error.
pub fn value_of<'a>(
    engine: &Engine,
    arena: &'a Arena,
    input: &'a [f32],
    v: ValueId,
) -> Result<&'a [f32]> {
    if v == IMAGE {
        return Ok(input);
    }
    (engine.plan.values.get(v.0 as usize))
        .filter(|value| value.slice.is_none())
        .and_then(|value| arena.as_slice().get(range(value)))
        .ok_or_else(|| internal(engine, "a value outside the arena"))
}

/// [`run`], writing each step's wall time in seconds to `seconds[step]`
/// (which must have one entry per step). Only profiling pays for the clock.
pub fn run_timed(
    engine: &Engine,
    arena: &mut Arena,
    scratch: &mut [f32],
    input: &[f32],
    output: &mut [f32],
    seconds: &mut [f64],
) -> Result<()> {
    let arena = arena.as_mut_slice();
    for ((i, step), time) in engine.plan.steps.iter().enumerate().zip(seconds) {
        let start = Instant::now();
        let out = output_of(engine, i, output);
        run_step(
            engine,
            (engine.team.as_deref(), Kernels::Image),
            i,
            step,
            arena,
            scratch,
            input,
            out,
        )?;
        *time = start.elapsed().as_secs_f64();
    }
    store_output(engine, arena, input, output)
}

/// The caller's `output`, if step `index` writes it directly.
fn output_of<'a>(engine: &Engine, index: usize, output: &'a mut [f32]) -> Option<&'a mut [f32]> {
    let last = index + 1 == engine.plan.steps.len();
    (last && engine.output_direct).then_some(output)
}

fn internal(engine: &Engine, what: &'static str) -> Error {
    Error::Internal {
        layer: engine.graph.name.to_string(),
        source: InternalError::Broken(what),
    }
}

/// Copies the network's output into `output` unless the last step wrote it
/// there (a network of no steps outputs its input).
fn store_output(engine: &Engine, arena: &[f32], input: &[f32], output: &mut [f32]) -> Result<()> {
    if engine.output_direct {
        return Ok(());
    }
    let plan = &engine.plan;
    let last = plan.steps.last().map_or(IMAGE, |s| s.output);
    let result = if last == IMAGE {
        Some(input)
    } else {
        arena.get(range(&plan.values[last.0 as usize]))
    };
    output.copy_from_slice(
        result
            .filter(|r| r.len() == output.len())
            .ok_or_else(|| internal(engine, "the output does not fit the arena"))?,
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn run_step(
    engine: &Engine,
    (team, kernels): (Option<&Team>, Kernels),
    index: usize,
    step: &Step,
    arena: &mut [f32],
    scratch: &mut [f32],
    image: &[f32],
    output: Option<&mut [f32]>,
) -> Result<()> {
    let anchor = engine.graph.node(step.nodes[0]);
    let (out_range, ranges) = &engine.ranges[index];
    let carved = match output {
        Some(out) => view(arena, ranges, image).map(|inputs| (out, inputs)),
        None => carve(arena, out_range.clone(), ranges, image),
    };
    let (out, inputs) = carved.ok_or_else(|| Error::Internal {
        layer: anchor.name.to_string(),
        source: InternalError::Broken("a step's input and output share memory"),
    })?;
    #[cfg(feature = "jit")]
    if let Some(compiled) = &engine.compiled {
        use crate::jit::Lowering;
        let lowered = match compiled.step(index, kernels) {
            Lowering::Reference(_) => None,
            Lowering::Kernel(lowered) => Some(lowered),
            Lowering::InNext => return Ok(()),
            Lowering::Concat(branches) => {
                for branch in branches {
                    let input = value(&inputs, anchor, branch.input)?;
                    crate::jit::run_branch(&compiled.program, branch, input, out, team)
                        .map_err(|e| node_error(anchor, e))?;
                }
                return epilogue(engine, step, 1, out, &inputs);
            }
        };
        if let Some(lowered) = lowered {
            use crate::jit::Extra;
            let operands = &lowered.operands;
            let extra = match operands.extra {
                Some(v) if step.over == Some(v) => Extra::Output,
                Some(v) => Extra::Buffer(value(&inputs, anchor, v)?),
                None => Extra::NONE,
            };
            crate::jit::run(
                &compiled.program,
                lowered,
                value(&inputs, anchor, operands.input)?,
                extra,
                out,
                scratch,
                team,
            )
            .map_err(|e| node_error(anchor, e))?;
            let first = step.nodes.len() - lowered.rest.len();
            return epilogue(engine, step, first, out, &inputs);
        }
    }
    #[cfg(not(feature = "jit"))]
    let _ = (index, team, kernels);
    match (engine.plan.values[step.output.0 as usize].slice, step.over) {
        (None, None) => reference_step(engine, step, out, &inputs),
        (None, Some(shortcut)) => {
            let staging = scratch
                .get_mut(..out.len())
                .ok_or_else(|| internal(engine, "the working memory is short of a shortcut"))?;
            staging.copy_from_slice(out);
            let inputs = Inputs {
                staged: Some((shortcut, staging)),
                ..inputs
            };
            reference_step(engine, step, out, &inputs)
        }
        (Some(slice), _) => {
            let len = engine.plan.values[step.output.0 as usize].len as usize;
            let staging = scratch
                .get_mut(..len)
                .ok_or_else(|| internal(engine, "the working memory is short of a slice"))?;
            reference_step(engine, step, staging, &inputs)?;
            scatter(anchor, staging, slice, out)
        }
    }
}

/// Writes a step's contiguous output `data` into its `slice` of `out`.
fn scatter(anchor: &Node, data: &[f32], slice: Slice, out: &mut [f32]) -> Result<()> {
    let (channels, total) = (slice.channels as usize, slice.total as usize);
    let pixels = data.len() / channels.max(1);
    let dims = Dims::new(1, pixels, channels);
    let first = slice.first as usize;
    r::concat_part(data, dims, first, Dims::new(1, pixels, total), out)
        .map_err(|e| node_error(anchor, e))
}

/// Runs `step` on the reference kernels into `out`, the step's own contiguous
/// output; a concat writes only its inputs that are not in place already.
fn reference_step(
    engine: &Engine,
    step: &Step,
    out: &mut [f32],
    inputs: &Inputs<'_>,
) -> Result<()> {
    let (graph, params) = (&engine.graph, &engine.params);
    let anchor = graph.node(step.nodes[0]);
    let fail = |e: KernelError| node_error(anchor, e);
    let in_dims = |i: usize| Dims::from(graph.node(anchor.inputs[i]).output);
    let input = |i: usize| operand(engine, inputs, anchor, anchor.inputs[i]);
    let layer = &params.layers[step.nodes[0].index()];
    match (&anchor.op, layer) {
        (
            Op::Conv2d(conv),
            LayerParams::Linear {
                weight: Weight::Loaded(weight),
                bias,
            },
        ) => {
            r::conv2d(conv, input(0)?, in_dims(0), weight, bias.as_deref(), out).map_err(fail)?;
        }
        (
            Op::Dense(dense),
            LayerParams::Linear {
                weight: Weight::Loaded(weight),
                bias,
            },
        ) => {
            r::dense(dense, input(0)?, weight, bias.as_deref(), out).map_err(fail)?;
        }
        (
            Op::Deconv(deconv),
            LayerParams::Linear {
                weight: Weight::Loaded(weight),
                bias,
            },
        ) => {
            r::deconv2d(deconv, input(0)?, in_dims(0), weight, bias.as_deref(), out)
                .map_err(fail)?;
        }
        (Op::Upsample(up), _) => r::upsample(up, input(0)?, in_dims(0), out).map_err(fail)?,
        (Op::Pool2d(pool), _) => {
            r::pool2d(pool, input(0)?, in_dims(0), out).map_err(fail)?;
        }
        (Op::GlobalPool(kind), _) => {
            r::global_pool(*kind, input(0)?, in_dims(0), out).map_err(fail)?
        }
        (Op::Lrn(lrn), _) => r::lrn(lrn, input(0)?, in_dims(0).c, out).map_err(fail)?,
        (Op::LayerNorm { eps }, LayerParams::LayerNorm { gamma, beta }) => {
            r::layer_norm(gamma, beta, *eps, input(0)?, out).map_err(fail)?
        }
        (Op::Concat, _) => {
            let total = Dims::from(anchor.output);
            let mut offset = 0;
            for (i, id) in anchor.inputs.iter().enumerate() {
                if !is_slice(&engine.plan, engine.plan.node_values[id.index()]) {
                    r::concat_part(input(i)?, in_dims(i), offset, total, out).map_err(fail)?;
                }
                offset += in_dims(i).c;
            }
        }
        (Op::Add, _) => r::add(input(0)?, input(1)?, out).map_err(fail)?,
        (Op::Scale, _) => r::scale(input(0)?, in_dims(0), input(1)?, out).map_err(fail)?,
        (Op::Shuffle { groups }, _) => {
            r::shuffle(*groups as usize, input(0)?, in_dims(0), out).map_err(fail)?
        }
        (Op::Slice { first, count }, _) => {
            r::slice(*first as usize, *count as usize, input(0)?, in_dims(0), out).map_err(fail)?
        }
        // An epilogue op that could not run in place: copy, then apply in place.
        (
            Op::BatchNorm { .. }
            | Op::Affine { .. }
            | Op::Activation(_)
            | Op::PRelu
            | Op::Softmax
            | Op::Dropout { .. }
            | Op::Identity
            | Op::Flatten,
            _,
        ) => {
            let input = input(0)?;
            if out.len() != input.len() {
                return Err(fail(KernelError::Length {
                    what: "element-wise output",
                    expected: input.len(),
                    found: out.len(),
                }));
            }
            out.copy_from_slice(input);
            in_place(anchor, layer, out, None)?;
        }
        (
            op @ (Op::Input | Op::Conv2d(_) | Op::Dense(_) | Op::Deconv(_) | Op::LayerNorm { .. }),
            _,
        ) => {
            return Err(node_error(
                anchor,
                InternalError::NoParams { kind: op.kind() },
            ))
        }
    }
    epilogue(engine, step, 1, out, inputs)
}

/// Applies the step's nodes from the `first`th on (at least 1: the anchor
/// is no epilogue) in place to `data`, a residual add reading its shortcut
/// (its input besides the tensor it runs on, [`plan::operands`]) among
/// `inputs`.
fn epilogue(
    engine: &Engine,
    step: &Step,
    first: usize,
    data: &mut [f32],
    inputs: &Inputs<'_>,
) -> Result<()> {
    for (i, id) in step.nodes.iter().enumerate().skip(first.max(1)) {
        let node = engine.graph.node(*id);
        let shortcut = if node.op == Op::Add {
            let other = plan::operands(node, step.nodes[i - 1]).next();
            let other = other
                .ok_or_else(|| node_error(node, InternalError::Broken("an add with one input")))?;
            Some(operand(engine, inputs, node, other)?)
        } else {
            None
        };
        in_place(node, &engine.params.layers[id.index()], data, shortcut)?;
    }
    Ok(())
}

/// A kernel's complaint about `node`'s buffers: a bug in cnnjit, reported as a value.
fn node_error(node: &Node, e: impl Into<InternalError>) -> Error {
    Error::Internal {
        layer: node.name.to_string(),
        source: e.into(),
    }
}

/// Applies an epilogue node to `data` in place.
fn in_place(
    node: &Node,
    layer: &LayerParams,
    data: &mut [f32],
    shortcut: Option<&[f32]>,
) -> Result<()> {
    let fail = |e: KernelError| node_error(node, e);
    match (&node.op, layer) {
        (
            Op::BatchNorm { eps },
            LayerParams::BatchNorm {
                gamma,
                beta,
                mean,
                var,
            },
        ) => {
            let bn = BatchNorm::new(gamma, beta, mean, var, *eps);
            r::batch_norm_in_place(&bn, data).map_err(fail)
        }
        (Op::BatchNorm { .. }, LayerParams::Folded)
        | (Op::Dropout { .. } | Op::Identity | Op::Flatten, _) => Ok(()),
        (Op::Activation(act), _) => {
            r::activation_in_place(*act, data);
            Ok(())
        }
        (Op::PRelu, LayerParams::PRelu { slopes }) => r::prelu_in_place(slopes, data).map_err(fail),
        (Op::Affine { .. }, LayerParams::Affine { scale, shift }) => {
            r::affine_in_place(scale, shift, data).map_err(fail)
        }
        (Op::Softmax, _) => {
            r::softmax_in_place(data, node.output.channels() as usize).map_err(fail)
        }
        (Op::Add, _) => match shortcut {
            Some(other) => r::add_in_place(data, other).map_err(fail),
            _ => Err(fail(KernelError::Invalid(
                "a residual add without its shortcut".into(),
            ))),
        },
        (
            op @ (Op::Input
            | Op::Conv2d(_)
            | Op::Dense(_)
            | Op::Pool2d(_)
            | Op::GlobalPool(_)
            | Op::BatchNorm { .. }
            | Op::PRelu
            | Op::Lrn(_)
            | Op::Concat
            | Op::Scale
            | Op::Shuffle { .. }
            | Op::Slice { .. }
            | Op::Upsample(_)
            | Op::Deconv(_)
            | Op::LayerNorm { .. }
            | Op::Affine { .. }),
            _,
        ) => Err(fail(KernelError::Invalid(format!(
            "{} cannot run in place",
            op.kind()
        )))),
    }
}

#[cfg(test)]
mod tests {
    use super::{run, Arena, Engine};
    use crate::memory::Budget;
    use crate::params::{load_params, random_weights, LoadOptions};
    use cnnjit_ir::plan::{plan_for, Fusion};

    /// On the reference kernels, a step written over its shortcut adds a
    /// copy of it staged in the working memory: bitwise what the same
    /// kernels give where the plan keeps the shortcut in memory of its own.
    #[test]
    fn a_step_over_its_shortcut_adds_a_staged_copy_on_the_reference_kernels() {
        let net = cnnjit_lang::compile_source(
            "Net(4x4x8) { conv(8, 1x1), relu, residual { conv(8, 1x1), relu, conv(8, 3x3, pad = 1) }, relu, conv(8, 1x1) }",
        )
        .unwrap()
        .remove(0);
        let weights = random_weights(&net.graph, 3);
        let input: Vec<f32> = (0..128).map(|i| (i * 37 % 17) as f32 / 8.0 - 1.0).collect();
        let forward = |fusion: Fusion| {
            let plan = plan_for(&net.graph, &fusion).unwrap();
            let params = load_params(&net.graph, &plan, &weights, LoadOptions::default()).unwrap();
            let over = plan.steps.iter().filter(|s| s.over.is_some()).count();
            let mut budget = Budget::new(None);
            let mut arena = Arena::new(plan.arena_bytes, &mut budget, || "arena".into()).unwrap();
            let engine = Engine::new(net.graph.clone(), plan, params);
            let mut scratch = vec![f32::NAN; engine.scratch_len()];
            let mut output = vec![0.0; 128];
            run(&engine, &mut arena, &mut scratch, &input, &mut output).unwrap();
            (over, output.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
        };
        let (over, staged) = forward(Fusion::DEFAULT);
        let apart = Fusion {
            conv_adds_in_place: false,
            ..Fusion::DEFAULT
        };
        let (none, own) = forward(apart);
        assert_eq!((over, none), (1, 0));
        assert_eq!(staged, own);
    }
}
